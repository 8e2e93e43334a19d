"""The app image built from the real Dockerfile, as it runs in the stack."""

import json
import re

from tests.stack.conftest import Stack, record_figures, run
from tests.test_immortal import FORKED_READER


def test_image_runs_as_a_non_root_user(stack: Stack) -> None:
    image = stack.settings["APP_IMAGE"]
    assert (
        run(["docker", "image", "inspect", "--format", "{{.Config.User}}", image]).stdout.strip()
        == "10001:10001"
    )
    container = stack.container_ids("app")[0]
    uid = run(["docker", "exec", container, "python", "-c", "import os; print(os.getuid())"]).stdout
    assert uid.strip() != "0"


def test_image_holds_only_the_code_it_runs(stack: Stack) -> None:
    listing = run(
        [
            "docker",
            "run",
            "--rm",
            stack.settings["APP_IMAGE"],
            "python",
            "-c",
            "import os; print(*os.listdir('.'))",
        ]
    ).stdout.split()
    assert sorted(listing) == ["alembic.ini", "app", "gunicorn.conf.py", "migrations"]


def test_gunicorn_runs_web_concurrency_uvicorn_workers(stack: Stack) -> None:
    container = stack.container_ids("app")[0]
    script = (
        "import os\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]\n"
        "cmds = [open(f'/proc/{p}/cmdline').read() for p in pids]\n"
        "print(sum('gunicorn' in c for c in cmds))\n"
    )
    processes = int(run(["docker", "exec", container, "python", "-c", script]).stdout)
    assert processes == 1 + 2, "one gunicorn master and WEB_CONCURRENCY=2 workers"
    logs = run(["docker", "logs", container])
    assert "Using worker: uvicorn_worker.UvicornWorker" in logs.stdout + logs.stderr


def test_proxy_headers_are_trusted_from_traefik_only(stack: Stack) -> None:
    # Through Traefik, X-Forwarded-Proto is honoured: the slash redirect is https.
    with stack.client() as client:
        response = client.get("/api/items")
    assert response.status_code == 307
    assert response.headers["location"] == stack.url("/api/items/")
    # From the backend network (not Traefik's), the same header is ignored.
    probe = (
        "import http.client\n"
        "c = http.client.HTTPConnection('app', 8000, timeout=5)\n"
        "spoofed = {'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '203.0.113.9'}\n"
        "c.request('GET', '/api/items', headers=spoofed)\n"
        "print(c.getresponse().getheader('location'))\n"
    )
    location = stack.compose(
        "run", "--rm", "--no-deps", "migrate", "python", "-c", probe
    ).stdout.strip()
    assert location == "http://app:8000/api/items/"


def test_workers_share_the_preloaded_objects(stack: Stack) -> None:
    """The image's interpreter (CPython 3.13) supports app/immortal.py: the master
    made its preloaded objects immortal before forking, and in the container a
    forked child reading 1,000,000 such objects copies almost none of their pages,
    where the same child over mortal objects copies them all."""
    container = stack.container_ids("app")[0]
    logs = run(["docker", "logs", container])
    made = re.search(r"made (\d+) preloaded objects immortal", logs.stdout + logs.stderr)
    assert made is not None, "the master did not make its objects immortal"
    reports = {
        mode: json.loads(
            run(["docker", "exec", container, "python", "-c", FORKED_READER, mode]).stdout
        )
        for mode in ("mortal", "immortal")
    }
    record_figures(
        "immortal preloaded objects",
        {
            "made by the master": int(made[1]),
            "a reader's copy, mortal KB": reports["mortal"]["copied_kb"],
            "immortal KB": reports["immortal"]["copied_kb"],
        },
    )
    assert int(made[1]) > 100_000
    assert reports["immortal"]["sample_immortal"]
    assert reports["mortal"]["copied_kb"] > 10_000
    assert reports["immortal"]["copied_kb"] < reports["mortal"]["copied_kb"] / 5
