"""Mail and page templates: files under app/templates/, filled with string.Template.

Every value put into HTML is escaped (an address or a name is the sender's
choice); text templates take values as they are. `$name` placeholders only: a
template cannot run code, and a missing value is an error, not an empty string.
"""

import html
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
SUBJECT_PREFIX = "Subject: "


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@cache
def _template(relative: str) -> Template:
    return Template((TEMPLATES / relative).read_text(encoding="utf-8"))


def render_html(relative: str, **values: str) -> str:
    """An HTML template with every value escaped (quotes too: values go in attributes)."""
    escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
    return _template(relative).substitute(escaped)


def render_mail(name: str, **values: str) -> RenderedMail:
    """email/NAME.txt (its first line `Subject: …`, then a blank line, then the
    body) and email/NAME.html, filled with the same values."""
    text = _template(f"email/{name}.txt").substitute(values)
    first_line, _, body = text.partition("\n")
    if not first_line.startswith(SUBJECT_PREFIX):
        raise ValueError(f"email/{name}.txt must start with a '{SUBJECT_PREFIX}' line")
    subject = first_line.removeprefix(SUBJECT_PREFIX).strip()
    return RenderedMail(
        subject=subject, text=body.lstrip("\n"), html=render_html(f"email/{name}.html", **values)
    )
