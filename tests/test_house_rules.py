"""The architecture's rules, checked on the source itself."""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"

# Who may import whom: each layer imports only its own and the layers below it.
# Every module of app/ belongs to one (a new module must be placed here).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points", ("app.main", "app.prestart", "app.auth.totp_rotate")),
    (
        "routers",
        (
            "app.routes",
            "app.auth.routes",
            "app.auth.cookie_routes",
            "app.auth.oidc_routes",
            "app.auth.passkey_routes",
            "app.middleware",
            "app.docs",
            "app.observability.requests",
            "app.observability.proxy",
        ),
    ),
    # The transports: how the tokens travel (JSON body, cookies plus CSRF).
    (
        "dependencies",
        (
            "app.dependencies",
            "app.auth.transports",
            "app.auth.bearer",
            "app.auth.cookies",
            "app.observability.sampler",
        ),
    ),
    # How a user proves who they are (proofs), and the one token flow (service).
    ("services", ("app.services", "app.auth.service", "app.auth.proofs")),
    (
        "auth kit and database",
        (
            "app.auth.tokens",
            "app.auth.api_keys",
            "app.auth.passwords",
            "app.auth.sessions",
            "app.auth.throttle",
            "app.auth.one_time_tokens",
            "app.auth.login_challenges",
            "app.auth.totp",
            "app.auth.recovery_codes",
            "app.auth.csrf",
            "app.auth.oidc",
            "app.auth.passkeys",
            "app.auth.passkey_ceremonies",
            "app.database",
            "app.mail",
        ),
    ),
    ("models and schemas", ("app.models", "app.schema", "app.policy")),
    (
        "configuration and errors",
        (
            "app.config",
            "app.settings",
            "app.signing_keys",
            "app.encryption_keys",
            "app.immortal",
            "app.exceptions",
            "app.observability.metrics",
            "app.observability.metrics_server",
            "app.observability.request_id",
            "app.observability.logs",
            "app.observability.tracing",
        ),
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


def test_exactly_one_module_computes_totp_codes() -> None:
    assert modules_importing("pyotp") == ["app/auth/totp.py"]
    assert modules_importing("segno") == ["app/auth/totp.py"]


# Imported only inside the functions that use them, never at a module's top:
# most workers never draw a QR code or see a passkey, and each would sit in every
# worker's memory (tests/test_preloaded_workers.py checks app.main loads neither).
LAZILY_IMPORTED = {
    "httpx": "app/auth/oidc.py",
    "segno": "app/auth/totp.py",
    "webauthn": "app/auth/passkeys.py",
}


def top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(("name", "module"), sorted(LAZILY_IMPORTED.items()))
def test_a_heavy_library_is_imported_by_one_module_and_lazily(name: str, module: str) -> None:
    assert modules_importing(name) == [module]
    assert name not in top_level_imports(APP.parent / module)


# OpenTelemetry's SDK, exporter and instrumentations: imported when tracing is on
# only, by one module (the API, which FastAPI imports anyway, is cheap).
OTEL_SDK_PARTS = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation")


def test_only_the_tracing_module_imports_the_opentelemetry_sdk_and_lazily() -> None:
    importing = sorted(
        str(path.relative_to(APP.parent))
        for path in APP.rglob("*.py")
        if any(name.startswith(OTEL_SDK_PARTS) for name in app_imports(path))
    )
    assert importing == ["app/observability/tracing.py"]
    top = top_level_imports(APP / "observability" / "tracing.py")
    assert "opentelemetry" not in top


def test_only_the_mail_package_speaks_smtp() -> None:
    assert modules_importing("smtplib") == ["app/mail/smtp.py"]


def test_only_the_account_mail_service_queues_mails() -> None:
    """Every mail an account gets is counted and queued by app/services/account_mail.py
    (the outbox itself aside); other services only wake the senders after their commit."""
    queuing = sorted(
        str(path.relative_to(APP.parent))
        for path in APP.rglob("*.py")
        if path.parent != APP / "mail"
        and any(
            isinstance(node, ast.Attribute) and node.attr in ("enqueue", "enqueue_mail")
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert queuing == ["app/services/account_mail.py"]


AUTH_SERVICES = [APP / "auth" / "service.py", APP / "auth" / "proofs.py"]
# The two transports' routers, and every router of app/auth.
AUTH_ROUTERS = [APP / "auth" / "routes.py", APP / "auth" / "cookie_routes.py"]
ALL_AUTH_ROUTERS = [
    *AUTH_ROUTERS,
    APP / "auth" / "oidc_routes.py",
    APP / "auth" / "passkey_routes.py",
]


def test_services_never_raise_http_exceptions() -> None:
    for path in [*APP.joinpath("services").glob("*.py"), *AUTH_SERVICES]:
        assert "HTTPException" not in path.read_text(), path


def test_routers_never_build_queries_or_commit() -> None:
    """The service a route calls owns the request's transaction."""
    for path in [*APP.joinpath("routes").glob("*.py"), *ALL_AUTH_ROUTERS]:
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
    for path in [*APP.joinpath("routes").glob("*.py"), *ALL_AUTH_ROUTERS]:
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


# --- The policy seam (app/policy.py) ------------------------------------------------

POLICY = APP / "policy.py"
# Where authorization is decided or declared: none of them reads a user's flags.
AUTHORIZING = sorted(
    [
        *APP.joinpath("routes").glob("*.py"),
        *APP.joinpath("services").glob("*.py"),
        APP / "dependencies.py",
        *ALL_AUTH_ROUTERS,
    ]
)


def _docstrings(tree: ast.AST) -> set[int]:
    return {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    }


def mentions(path: Path, name: str) -> list[int]:
    """The lines whose code (docstrings aside: they are the OpenAPI's descriptions)
    names `name`: a variable, an attribute, a keyword argument or a string."""
    tree = ast.parse(path.read_text())
    docstrings = _docstrings(tree)
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == name)
        or (isinstance(node, ast.Attribute) and node.attr == name)
        or (isinstance(node, ast.keyword) and node.arg == name)
        or (isinstance(node, ast.arg) and node.arg == name)
        or (isinstance(node, ast.Constant) and node.value == name and id(node) not in docstrings)
    )


@pytest.mark.parametrize("path", AUTHORIZING, ids=lambda path: str(path.relative_to(APP)))
def test_only_the_policy_reads_the_admin_flag(path: Path) -> None:
    """No route or service branches on `is_superuser`: a route declares a
    permission, a service asks the Viewer. The flag is read by app/policy.py (and
    held by the model and the schemas)."""
    assert mentions(path, "is_superuser") == [], path


def test_the_policy_reads_the_admin_flag() -> None:
    assert mentions(POLICY, "is_superuser")


def _service_functions() -> list[tuple[Path, ast.FunctionDef | ast.AsyncFunctionDef]]:
    return [
        (path, node)
        for path in [*APP.joinpath("services").glob("*.py"), *AUTH_SERVICES]
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_services_take_the_viewer_keyword_only() -> None:
    """A service is told who asks as `*, viewer: Viewer` (Dispatch's style), never
    an `admin` or an `owner` it would check itself."""
    for path, function in _service_functions():
        where = f"{path.name}:{function.name}"
        arguments = function.args
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            annotation = ast.unparse(argument.annotation) if argument.annotation else ""
            assert argument.arg not in ("admin", "owner"), where
            if annotation == "Viewer" or argument.arg == "viewer":
                assert (argument.arg, annotation) == ("viewer", "Viewer"), where
                assert argument in arguments.kwonlyargs, where


def test_items_services_all_take_the_viewer() -> None:
    for path, function in _service_functions():
        if path.name == "items.py" and not function.name.startswith("_"):
            names = [argument.arg for argument in function.args.kwonlyargs]
            assert "viewer" in names, function.name


def test_services_take_typed_commands_not_dicts_of_fields() -> None:
    """What a caller may change arrives as a command (app/schema/users.py builds
    them from the request), never as a dict of whatever fields were sent."""
    for path, function in _service_functions():
        if not function.name.startswith(("create_", "update_", "replace_", "patch_")):
            continue
        for argument in [*function.args.args, *function.args.kwonlyargs]:
            annotation = ast.unparse(argument.annotation) if argument.annotation else ""
            assert not annotation.startswith(("dict[", "Mapping[")), (
                f"{path.name}:{function.name}({argument.arg}: {annotation})"
            )


def _services_layer() -> list[str]:
    services = LAYER_NAMES.index("services")
    return sorted(name for name in set(APP_MODULES) - PACKAGES if layer_of(name) == services)


# What reading or writing HTTP looks like: a request, its cookies or headers, a
# response's cookies.
HTTP_NAMES = {
    "Request",
    "Response",
    "Cookie",
    "Header",
    "cookies",
    "headers",
    "set_cookie",
    "delete_cookie",
}


@pytest.mark.parametrize("module", _services_layer())
def test_no_service_reads_a_request_or_a_cookie(module: str) -> None:
    """The services (app/services, the auth service and its proofs) take values:
    the routers and the transports read requests and carry cookies."""
    tree = ast.parse(APP_MODULES[module].read_text())
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    used |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert used & HTTP_NAMES == set(), f"{module} handles HTTP: {sorted(used & HTTP_NAMES)}"
    web = [
        name
        for name in app_imports(APP_MODULES[module])
        if name.split(".")[0] in ("fastapi", "starlette")
    ]
    assert web == [], f"{module} imports the web framework: {web}"


# The two transports and their routers. What they share is in app/auth/transports.py
# (the device cookie, no-store) and below them (the service): never each other.
BEARER_MODULES = ("app.auth.routes", "app.auth.bearer")
COOKIE_MODULES = ("app.auth.cookie_routes", "app.auth.cookies")


@pytest.mark.parametrize(
    ("module", "others"),
    [
        *((name, COOKIE_MODULES) for name in BEARER_MODULES),
        *((name, BEARER_MODULES) for name in COOKIE_MODULES),
    ],
)
def test_bearer_and_cookie_modules_never_import_each_other(
    module: str, others: tuple[str, ...]
) -> None:
    imported = app_imports(APP_MODULES[module])
    crossing = sorted(name for name in imported if name in others)
    assert crossing == [], f"{module} imports the other transport: {crossing}"


def test_one_login_refresh_and_logout_for_both_transports() -> None:
    """Both routers sign in, rotate and log out through the same service functions."""
    for path in AUTH_ROUTERS:
        source = path.read_text()
        for call in ("auth_service.sign_in(", "auth_service.refresh(", "auth_service.logout("):
            assert call in source, f"{path.name} does not call {call}"


def test_proofs_open_no_session() -> None:
    """A proof answers who the user is: it opens no session and issues no token."""
    imported = app_imports(APP / "auth" / "proofs.py")
    assert not any(name.startswith(("app.auth.sessions", "app.auth.tokens")) for name in imported)
    assert not any(name.startswith("app.auth.service") for name in imported), imported
