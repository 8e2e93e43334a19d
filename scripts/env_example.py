"""Read `.env.example`: every setting's name, example value and marks.

`.env.example` is generated from the settings' declaration (app/settings/, by
`make settings`), so what it says of a setting is what the declaration says: the
line before `NAME='value'` may mark it `[secret]` and/or `[required in
production]`. Standard library only: the deploy scripts read it on hosts and
runners that have no app environment.
"""

import re
from dataclasses import dataclass
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"
SECRET = "secret"
REQUIRED_IN_PRODUCTION = "required in production"
_MARKS = re.compile(r"^# \[(?P<marks>[a-z ,]+)\]$")
_SETTING = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)='(?P<value>[^']*)'$")


@dataclass(frozen=True)
class ExampleSetting:
    name: str
    value: str
    secret: bool
    required_in_production: bool


def marks_line(*, secret: bool, required_in_production: bool) -> str | None:
    """The comment line that marks a setting, as the renderer writes it."""
    marks = [SECRET] * secret + [REQUIRED_IN_PRODUCTION] * required_in_production
    return f"# [{', '.join(marks)}]" if marks else None


def parse(text: str) -> list[ExampleSetting]:
    """Each `NAME='value'` line, with the marks of the line right before it."""
    settings, marks = [], set[str]()
    for line in text.splitlines():
        found = _SETTING.match(line)
        if found:
            settings.append(
                ExampleSetting(
                    name=found["name"],
                    value=found["value"],
                    secret=SECRET in marks,
                    required_in_production=REQUIRED_IN_PRODUCTION in marks,
                )
            )
        marked = _MARKS.match(line)
        marks = {mark.strip() for mark in marked["marks"].split(",")} if marked else set()
    return settings


def example_settings(path: Path = EXAMPLE) -> list[ExampleSetting]:
    return parse(path.read_text())
