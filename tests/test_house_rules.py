"""The architecture's rules, checked on the source itself."""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"

# Who may import whom: each layer imports only its own and the layers below it.
# Every module of app/ belongs to one (a new module must be placed here).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points", ("app.main", "app.prestart")),
    (
        "routers",
        ("app.routes", "app.auth.routes", "app.auth.cookie_routes", "app.middleware", "app.docs"),
    ),
    ("dependencies", ("app.dependencies", "app.auth.cookies")),
    ("services", ("app.services", "app.auth.service", "app.auth.cookie_service")),
    (
        "auth kit and database",
        (
            "app.auth.tokens",
            "app.auth.passwords",
            "app.auth.sessions",
            "app.auth.throttle",
            "app.auth.one_time_tokens",
            "app.auth.csrf",
            "app.database",
            "app.mail",
        ),
    ),
    ("models and schemas", ("app.models", "app.schema", "app.policy")),
    (
        "configuration and errors",
        ("app.config", "app.settings", "app.signing_keys", "app.exceptions"),
    ),
]
# And some imports are refused outright, though they would run downwards.
FORBIDDEN = [
    ("routers", "app.database", "a router reads the database through a service"),
    ("entry points", "devtools", "development tools are not in the image"),
]
NO_WEB_FRAMEWORK = ("services", "auth kit and database", "models and schemas")


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _is_script_block(node: ast.AST) -> bool:
    """`if __name__ == "__main__":`, run only as `python -m`, never when served."""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def app_imports(path: Path) -> set[str]:
    """What `path` imports, as dotted names (`from app.auth import service` gives
    app.auth and app.auth.service), outside its `if __name__ == "__main__":` block."""
    tree = ast.parse(path.read_text())
    tree.body = [node for node in tree.body if not _is_script_block(node)]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layer_of(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return index
    return None


APP_MODULES = {module_name(path): path for path in APP.rglob("*.py")}
PACKAGES = {name for name, path in APP_MODULES.items() if path.name == "__init__.py"}
LAYER_NAMES = [name for name, _ in LAYERS]


def test_every_module_has_a_layer() -> None:
    unplaced = [name for name in APP_MODULES if name not in PACKAGES and layer_of(name) is None]
    assert unplaced == [], f"place these in LAYERS: {unplaced}"


@pytest.mark.parametrize("module", sorted(set(APP_MODULES) - PACKAGES))
def test_imports_run_down_the_layers(module: str) -> None:
    own = layer_of(module)
    assert own is not None
    imported = {name for name in app_imports(APP_MODULES[module]) if name in APP_MODULES}
    upward = sorted(
        name
        for name in imported - PACKAGES
        if (theirs := layer_of(name)) is not None and theirs < own
    )
    assert upward == [], f"{module} ({LAYER_NAMES[own]}) imports from above: {upward}"


@pytest.mark.parametrize("module", sorted(set(APP_MODULES) - PACKAGES))
def test_no_forbidden_import(module: str) -> None:
    own = LAYER_NAMES[layer_of(module) or 0]
    imported = app_imports(APP_MODULES[module])
    for layer, target, why in FORBIDDEN:
        if own == layer:
            found = [name for name in imported if name == target or name.startswith(target + ".")]
            assert found == [], f"{module}: {why} ({found})"
    if own in NO_WEB_FRAMEWORK:
        web = [name for name in imported if name.split(".")[0] in ("fastapi", "starlette")]
        assert web == [], f"{module} ({own}) imports the web framework: {web}"
    if own in ("models and schemas",):
        upward = [name for name in imported if name.startswith(("app.services", "app.auth"))]
        assert upward == [], f"{module} imports services or auth: {upward}"
    if module.startswith("app.auth.") and own == "auth kit and database":
        services = [
            name for name in imported if name.startswith(("app.services", "app.auth.service"))
        ]
        assert services == [], f"{module} (auth kit) imports services: {services}"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules_importing(name: str) -> list[str]:
    return sorted(
        str(path.relative_to(APP.parent))
        for path in APP.rglob("*.py")
        if name in imported_modules(path)
    )


def test_exactly_one_module_imports_jwt() -> None:
    assert modules_importing("jwt") == ["app/auth/tokens.py"]


def test_exactly_one_module_imports_bcrypt() -> None:
    assert modules_importing("bcrypt") == ["app/auth/passwords.py"]


AUTH_SERVICES = [APP / "auth" / "service.py", APP / "auth" / "cookie_service.py"]
AUTH_ROUTERS = [APP / "auth" / "routes.py", APP / "auth" / "cookie_routes.py"]


def test_services_never_raise_http_exceptions() -> None:
    for path in [*APP.joinpath("services").glob("*.py"), *AUTH_SERVICES]:
        assert "HTTPException" not in path.read_text(), path


def test_routers_never_build_queries_or_commit() -> None:
    """The service a route calls owns the request's transaction."""
    for path in [*APP.joinpath("routes").glob("*.py"), *AUTH_ROUTERS]:
        imports = imported_modules(path)
        assert "sqlalchemy" not in imports, path
        assert "select(" not in path.read_text(), path
        assert ".commit(" not in path.read_text(), path
        assert ".rollback(" not in path.read_text(), path


def test_configuration_is_read_only_in_config() -> None:
    for path in APP.rglob("*.py"):
        if path.name != "config.py":
            assert "os.environ[" not in path.read_text(), path
            assert "getenv" not in path.read_text(), path


def test_each_route_makes_at_most_one_service_call() -> None:
    """One owner per request: the service function the route calls (it commits,
    or reads without a transaction); the route parses and answers."""
    for path in [*APP.joinpath("routes").glob("*.py"), *AUTH_ROUTERS]:
        for node in ast.parse(path.read_text()).body:
            if not (isinstance(node, ast.AsyncFunctionDef) and node.decorator_list):
                continue
            calls = [
                ast.unparse(call.func)
                for call in ast.walk(node)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id.endswith("_service")
            ]
            assert len(calls) <= 1, f"{path.name}:{node.name} calls {calls}"
