"""`make up` on a laptop: a local domain is served with the project's local CA."""

import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from tests.stack.conftest import Stack, env_file_text, run, timed

LOCAL_DOMAIN = "stack.localhost"


def test_make_up_serves_a_local_domain_with_the_local_ca(stack: Stack, tmp_path: Path) -> None:
    started = time.monotonic()
    # The example's TLS settings (a *.localhost name, no resolver) on the running stack.
    settings = {**stack.settings, "DOMAIN": LOCAL_DOMAIN, "CERT_RESOLVER": ""}
    stack.env_file.write_text(env_file_text(settings))
    # What `make up` runs; it checks HTTPS with the local CA before it returns.
    env = {k: v for k, v in stack.env.items() if k != "HEALTH_CHECK_CA_FILE"}
    up = run(["scripts/stack.sh", "up"], env=env)
    # Nothing a newcomer would stop to wonder about: no deprecated builder switch,
    # compose's Bake warning explained where buildx is missing (as on this machine),
    # and no error from gunicorn's control socket on the read-only root.
    output = up.stdout + up.stderr
    assert "COMPOSE_BAKE" not in output, output[-2000:]
    if run(["docker", "buildx", "version"], check=False).returncode == 0:
        assert "configured to build using Bake" not in output, output[-2000:]
    else:
        assert "docker buildx is not installed" in up.stdout, up.stdout[-2000:]
    app_log = stack.compose("logs", "app").stdout
    assert "Control server error" not in app_log, app_log[-2000:]

    context = ssl.create_default_context(cafile=str(Path(settings["LOCAL_CERTS_DIR"]) / "ca.crt"))
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(f"https://{LOCAL_DOMAIN}/api/health/ready")
    assert response.status_code == 200
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")

    with (
        socket.create_connection((LOCAL_DOMAIN, 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=f"traefik.{LOCAL_DOMAIN}") as tls,
    ):
        cert: Any = tls.getpeercert()
    assert ("DNS", f"*.{LOCAL_DOMAIN}") in cert["subjectAltName"]
    timed("local-domain mode: local CA certificate", started)
