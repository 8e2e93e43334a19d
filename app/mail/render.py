"""The mails and the pages their links open: files under app/mail/templates/,
filled with string.Template.

Every value put into HTML is escaped (an address or a name is the sender's
choice); text templates take values as they are. `$name` placeholders only: a
template cannot run code, and a missing value is an error, not an empty string.

A mail is email/NAME.txt (its first line `Subject: …`) and email/NAME.html; a
page is pages/NAME.html (its first line `Title: …`), wrapped in pages/layout.html,
the head and style every page shares. A page may have a script and a style of
its own, pages/NAME.js and pages/NAME.css: files of ours, not values, so they go
in as they are (`$page_script` in the page's nonce'd <script>, the style at the
end of the layout's <style>), and are neither escaped nor read as templates.
"""

import html
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "templates"
SUBJECT_PREFIX = "Subject: "
TITLE_PREFIX = "Title: "


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@cache
def _template(relative: str) -> Template:
    return Template((TEMPLATES / relative).read_text(encoding="utf-8"))


def _escaped(values: dict[str, str]) -> dict[str, str]:
    """Values for HTML, quotes escaped too: values go in attributes."""
    return {name: html.escape(value, quote=True) for name, value in values.items()}


def _headed(relative: str, values: dict[str, str], prefix: str) -> tuple[str, str]:
    """A template whose first line is `prefix` and a header (then a blank line,
    then the body), filled: the header and the body."""
    first_line, _, body = _template(relative).substitute(values).partition("\n")
    if not first_line.startswith(prefix):
        raise ValueError(f"{relative} must start with a '{prefix}' line")
    return first_line.removeprefix(prefix).strip(), body.lstrip("\n")


def render_mail(name: str, **values: str) -> RenderedMail:
    """email/NAME.txt and email/NAME.html, filled with the same values."""
    subject, text = _headed(f"email/{name}.txt", values, SUBJECT_PREFIX)
    page = _template(f"email/{name}.html").substitute(_escaped(values))
    return RenderedMail(subject=subject, text=text, html=page)


@cache
def _page_asset(name: str, suffix: str, element: str) -> str:
    """pages/NAME.SUFFIX as it is, or "" if there is none. It must not close the
    element it goes into."""
    path = TEMPLATES / "pages" / f"{name}.{suffix}"
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8")
    if f"</{element}" in text.lower():
        raise ValueError(f"pages/{name}.{suffix} must not hold '</{element}'")
    return text


def render_page(name: str, **values: str) -> str:
    """pages/NAME.html in the layout; the values fill both."""
    escaped = _escaped(values)
    title, body = _headed(
        f"pages/{name}.html",
        {**escaped, "page_script": _page_asset(name, "js", "script")},
        TITLE_PREFIX,
    )
    return _template("pages/layout.html").substitute(
        escaped, title=title, body=body, page_style=_page_asset(name, "css", "style")
    )
