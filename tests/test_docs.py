"""The docs hold together: the README stays a five-minute read, it leads to every
page of docs/, and every relative link in README.md, SECURITY.md and docs/*.md
reaches a file of the repository and, with an #anchor, a heading of that file."""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# [text](target) and ![alt](target), an optional "title" after the target.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]


def _without_code_blocks(markdown: str) -> str:
    return FENCE.sub("", markdown)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (links reduced to their text, code
    to its content), lower case, every character but letters, digits, '_', '-'
    and spaces dropped, each space a '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = CODE_SPAN.sub(r"\2", text)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2… as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(_without_code_blocks(markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(markdown: str) -> list[str]:
    """The targets of the links outside code: `[a](b)` in a code span is no link."""
    prose = CODE_SPAN.sub(lambda m: "x" * len(m.group(0)), _without_code_blocks(markdown))
    return LINK.findall(prose)


def broken_links(document: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with each relative link of document, one line each."""
    problems = []
    for target in links(document.read_text()):
        if SCHEME.match(target):
            continue  # https:, mailto:: not the repository's
        path_part, _, anchor = target.partition("#")
        file = (document.parent / unquote(path_part)).resolve() if path_part else document
        if not file.is_relative_to(root.resolve()):
            problems.append(f"{target}: outside the repository")
            continue
        if not file.exists():
            problems.append(f"{target}: no such file")
            continue
        if anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            problems.append(f"{target}: no heading #{anchor} in {file.name}")
    return problems


def test_the_readme_is_a_five_minute_read() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_its_heading(document: Path) -> None:
    assert broken_links(document) == []


def test_the_readme_leads_to_every_page_of_docs() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in links((ROOT / "README.md").read_text())
        if not SCHEME.match(target)
    }
    pages = {page.resolve() for page in (ROOT / "docs").glob("*.md")}
    assert sorted(p.name for p in pages - linked) == []


def test_the_check_catches_a_broken_file_an_unknown_anchor_and_a_way_out(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Zero-downtime deploys (one host)\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# T\n\n## Settings (`.env`)\n\n## Settings (`.env`)\n\n"
        "[ok](docs/page.md#zero-downtime-deploys-one-host) [ok](#settings-env) "
        "[ok](#settings-env-1) [ok](https://example.com/x.md#y) `[code](nowhere.md)`\n"
        "[gone](docs/missing.md) [moved](docs/page.md#zero-downtime-deploys) "
        "[here](#settings) [out](../elsewhere/page.md)\n"
        "```\n[fenced](nowhere.md)\n```\n"
    )
    (tmp_path.parent / "elsewhere").mkdir(exist_ok=True)
    (tmp_path.parent / "elsewhere" / "page.md").write_text("# Elsewhere\n")
    assert broken_links(readme, root=tmp_path) == [
        "docs/missing.md: no such file",
        "docs/page.md#zero-downtime-deploys: no heading #zero-downtime-deploys in page.md",
        "#settings: no heading #settings in README.md",
        "../elsewhere/page.md: outside the repository",
    ]
