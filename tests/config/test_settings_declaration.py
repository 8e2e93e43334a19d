"""One declaration of the settings (app/settings/): what is derived from it is
current, and what is written elsewhere by hand agrees with it."""

import re
from pathlib import Path

import pytest

from app.config import GROUPS, Settings
from app.settings.declaration import declared
from app.settings.edge import EdgeSettings
from devtools import settings_files
from scripts.env_example import example_settings, parse
from scripts.stack import Settings as DeploySettings
from scripts.stack import connections_per_container

REPO = Path(__file__).resolve().parents[2]
ALL = [setting for group in GROUPS for setting in declared(group, group.TITLE)]
BY_NAME = {setting.name: setting for setting in ALL}
# Where defaults are written again: compose's `${NAME:-default}`, the shell's, and
# Python's `environ.get("NAME", "default")`.
DEFAULT_SITES = [
    "compose.yaml",
    "compose.swarm.yaml",
    "gunicorn.conf.py",
    "Dockerfile",
    *(str(path.relative_to(REPO)) for path in sorted((REPO / "scripts").glob("*.sh"))),
    *(str(path.relative_to(REPO)) for path in sorted((REPO / "scripts").glob("*.py"))),
]
SHELL_DEFAULT = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*):-(?P<default>[^}]*)\}")
PYTHON_DEFAULT = re.compile(
    r"environ\.get\(\"(?P<name>[A-Z][A-Z0-9_]*)\", \"(?P<default>[^\"]*)\"\)"
)
# Variables compose reads that are not settings of .env: compose's own, the
# image's revision label (the deploy sets it from git), the env file's path (the
# deploy and the stack suite point it at another file).
NOT_SETTINGS = {"COMPOSE_PROJECT_NAME", "APP_REVISION", "ENV_FILE"}


@pytest.mark.parametrize("path", list(settings_files.FILES), ids=lambda path: path.name)
def test_the_generated_files_are_current(path: Path) -> None:
    """`.env.example` and docs/settings.md are what `make settings` writes."""
    assert path.read_text() == settings_files.FILES[path](), f"run make settings: {path}"


def test_every_setting_of_the_app_is_declared_in_exactly_one_group() -> None:
    app_groups = [group for group in GROUPS if group is not EdgeSettings]
    names = [setting.name for group in app_groups for setting in declared(group, group.TITLE)]
    assert len(names) == len(set(names))
    assert set(names) == set(Settings.model_fields)
    assert not set(EdgeSettings.model_fields) & set(names)


def test_the_example_file_says_what_the_declaration_says() -> None:
    """The deploy scripts read names, secrets and production needs from .env.example."""
    read = {s.name: (s.value, s.secret, s.required_in_production) for s in example_settings()}
    assert read == {
        s.name: (settings_files.example_value(s), s.secret, s.required_in_production) for s in ALL
    }


def test_no_example_secret_is_in_the_app() -> None:
    """The app's files go into the image; the example secrets shown in .env.example
    stay in the development tools (a deployment may use them, as the stack suite
    does with the user's example password)."""
    app = Path(__file__).resolve().parents[2] / "app"
    for value in settings_files.SECRET_EXAMPLES.values():
        assert not [path for path in app.rglob("*.py") if value in path.read_text()]


def test_the_example_parser_reads_marks_only_on_the_line_before_a_setting() -> None:
    text = "# [secret]\nA='1'\nB='2'\n# [required in production]\n\nC='3'\n# [secret]\n# x\nD=''\n"
    assert [(s.name, s.secret, s.required_in_production) for s in parse(text)] == [
        ("A", True, False),
        ("B", False, False),
        ("C", False, False),
        ("D", False, False),
    ]


def _defaults_written_at(path: str) -> list[tuple[str, str]]:
    text = (REPO / path).read_text()
    return [
        (found["name"], found["default"])
        for pattern in (SHELL_DEFAULT, PYTHON_DEFAULT)
        for found in pattern.finditer(text)
    ]


@pytest.mark.parametrize("path", DEFAULT_SITES)
def test_defaults_written_again_agree_with_the_declaration(path: str) -> None:
    """A default repeated in compose, a script or gunicorn's configuration (for a
    variable missing from an older .env) is the declared one. Image names are
    pinned in compose.yaml itself: empty in the declaration."""
    wrong = [
        f"{name}: {default!r} here, {BY_NAME[name].value!r} declared"
        for name, default in _defaults_written_at(path)
        if name in BY_NAME
        and not name.endswith("_IMAGE")
        and default  # `${NAME:-}`: only a guard against `set -u`
        and default != BY_NAME[name].value
    ]
    assert not wrong


def test_defaults_are_found_where_they_are_written_again() -> None:
    """The scan above sees gunicorn's workers."""
    found = {name for path in DEFAULT_SITES for name, _ in _defaults_written_at(path)}
    assert "WEB_CONCURRENCY" in found


def test_the_deploy_budgets_default_to_the_declared_values() -> None:
    """scripts/stack.py and scripts/swarm.py write no default of their own: an unset
    setting is .env.example's value, which is the declaration's (above)."""
    unset = DeploySettings({})
    pools = ("DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_READ_POOL_SIZE")
    assert connections_per_container(unset) == int(BY_NAME["WEB_CONCURRENCY"].value) * sum(
        int(BY_NAME[name].value) for name in pools
    )
    pooler = ("PGBOUNCER_POOL_SIZE", "PGBOUNCER_MAX_CLIENT_CONN")
    for name in ("APP_REPLICAS", "POSTGRES_MAX_CONNECTIONS", *pools, *pooler):
        assert unset.number(name) == int(BY_NAME[name].value)


def test_pgbouncers_own_defaults_are_the_declared_ones() -> None:
    """pgbouncer/entrypoint.sh's fallbacks (for a plain `docker run`) match compose's."""
    entrypoint = (REPO / "pgbouncer" / "entrypoint.sh").read_text()
    for name in ("PGBOUNCER_POOL_SIZE", "PGBOUNCER_MAX_CLIENT_CONN"):
        assert "${" + f"{name}:-{BY_NAME[name].value}" + "}" in entrypoint, name


@pytest.mark.parametrize("path", ["compose.yaml", "compose.swarm.yaml"])
def test_every_variable_compose_reads_is_a_declared_setting(path: str) -> None:
    text = (REPO / path).read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    assert used - set(BY_NAME) - NOT_SETTINGS == set()
