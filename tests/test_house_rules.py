"""The architecture's rules, checked on the source itself."""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"


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


def test_services_never_raise_http_exceptions() -> None:
    for path in [*APP.joinpath("services").glob("*.py"), APP / "auth" / "service.py"]:
        assert "HTTPException" not in path.read_text(), path


def test_routers_never_build_queries() -> None:
    for path in [*APP.joinpath("routes").glob("*.py"), APP / "auth" / "routes.py"]:
        imports = imported_modules(path)
        assert "sqlalchemy" not in imports, path
        assert "select(" not in path.read_text(), path


def test_configuration_is_read_only_in_config() -> None:
    for path in APP.rglob("*.py"):
        if path.name != "config.py":
            assert "os.environ[" not in path.read_text() or path.name == "devserver.py", path
            assert "getenv" not in path.read_text(), path
