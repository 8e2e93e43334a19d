"""`python -m app.main` (what `make dev` runs) on a machine with no Postgres."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from devtools.embedded_postgres import free_port

ROOT = Path(__file__).resolve().parents[1]


def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the dev server exited early"
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {seconds} s")


def test_the_dev_server_starts_an_embedded_postgres_and_serves_the_api() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="devserver-test-"))
    data_dir.chmod(0o755)
    api_port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "local",
        "POSTGRES_URL": f"127.0.0.1:{free_port()}",  # nothing listens there
        "POSTGRES_PW": "`b{5:P3kUv5LdJF.",
        "BCRYPT_ROUNDS": "4",
        "FIRST_SUPERUSER_EMAIL": "dev-admin@example.com",
        "FIRST_SUPERUSER_PASSWORD": "dev-admin-password",
    }
    command = [
        sys.executable,
        "-m",
        "app.main",
        "--port",
        str(api_port),
        "--data-dir",
        str(data_dir / "pg"),
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        wait_for(f"{base}/api/health/ready", process, seconds=60)
        assert "swagger-ui" in httpx.get(f"{base}/docs").text
        login = httpx.post(
            f"{base}/api/token/",
            data={"username": "dev-admin@example.com", "password": "dev-admin-password"},
        )
        assert login.status_code == 200, login.text
    finally:
        os.killpg(process.pid, signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    assert "started an embedded one" in output
    # The embedded server stopped with the dev server.
    assert not (data_dir / "pg" / "postmaster.pid").exists()
