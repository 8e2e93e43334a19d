"""The app is stateless: three replicas behind Traefik share the requests."""

import json
import time
import uuid
from collections import Counter

from tests.stack.conftest import Stack, run, timed


def answering_addresses(stack: Stack, probe: str, since: str) -> Counter[str]:
    """Backend address of each request tagged with `probe`, from Traefik's JSON access log."""
    traefik = stack.container_ids("traefik")[0]
    logs = run(["docker", "logs", "--since", since, traefik]).stdout
    entries = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return Counter(e["ServiceAddr"] for e in entries if probe in e.get("RequestPath", ""))


def test_three_app_replicas_share_the_traffic(stack: Stack) -> None:
    started = time.monotonic()
    stack.compose(
        "up", "--detach", "--wait", "--no-recreate", "--no-deps", "--scale", "app=3", "app"
    )
    try:
        network = stack.settings["PROXY_NETWORK"]
        replicas = {
            stack.inspect(c)["NetworkSettings"]["Networks"][network]["IPAddress"] + ":8000"
            for c in stack.container_ids("app")
        }
        assert len(replicas) == 3
        probe = uuid.uuid4().hex
        since = str(int(time.time()) - 1)

        def spread() -> Counter[str] | None:
            # Traefik adds a replica once Docker reports it healthy: retry until it has all three.
            with stack.client() as client:
                for n in range(12):
                    assert client.get(f"/api/health?probe={probe}&n={n}").status_code == 200
            seen = answering_addresses(stack, probe, since)
            return seen if set(seen) == replicas else None

        seen = stack.wait_until("requests answered by all three replicas", spread, timeout=45)
        assert set(seen) == replicas, seen
    finally:
        stack.compose(
            "up", "--detach", "--wait", "--no-recreate", "--no-deps", "--scale", "app=1", "app"
        )
    timed("scale to 3, spread, back to 1", started)
