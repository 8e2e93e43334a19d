"""Deploy (or update) the stack with compose on the current Docker engine; fail
unless every service is healthy and the API answers over verified HTTPS. Run by
scripts/deploy.sh (`make deploy`):

    python3 -m scripts.deploy

It is what CI's deploy job runs on the server (.github/workflows/deploy.yml), and
what tests/stack runs against the local engine, so this path is tested.

Needs an ENV_FILE (default .env) written beforehand: CI writes it from its
secrets, and this script never invents secrets. The health check options
(HEALTH_CHECK_CA_FILE, HEALTH_CHECK_INSECURE, HEALTH_CHECK_ADDRESS, WAIT_TIMEOUT)
are scripts/stack.py's. COMPOSE_FILE and COMPOSE_PROJECT_NAME work as in compose
itself. Standard library only: it runs on the deploy host.
"""

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from scripts import stack
from scripts.runner import CommandFailed, Runner
from scripts.stack import Console, Refusal, parse_env_file

# Settings a deploy cannot do without, whatever .env.example says.
REQUIRED = ("DOMAIN", "SECRET_KEY", "POSTGRES_USER", "POSTGRES_PW", "POSTGRES_DB")


def missing_refusal(values: Mapping[str, str], env_file: str) -> str | None:
    """The first required setting that is empty (in the file or the environment)."""
    for name in REQUIRED:
        if not values.get(name):
            return f"{name} is empty in {env_file}"
    return None


def run_command(args: Sequence[str], runner: Runner, console: Console) -> None:
    env_file = runner.environ.get("ENV_FILE") or ".env"
    runner.environ["ENV_FILE"] = env_file
    if not Path(env_file).is_file():
        raise Refusal(f"{env_file} not found: write it first (CI writes it from its secrets)")
    if not runner.which("curl"):
        raise Refusal("curl is needed for the health check")
    runner.environ.update(parse_env_file(Path(env_file).read_text()))
    refusal = missing_refusal(runner.environ, env_file)
    if refusal:
        raise Refusal(refusal)
    started = runner.clock()
    console.log("validating the compose configuration")
    runner.run("docker", "compose", "--env-file", env_file, "config", "--quiet", capture=False)
    # First deploy: build, migrate (one-shot service), start, wait for healthchecks
    # and HTTPS. Later ones: the new release starts beside the running one, which is
    # retired once Traefik routes to the new containers; no request is dropped, and
    # a release that is not healthy in time is removed again (docs/deploy.md,
    # "Zero-downtime deploys"). Its messages say [stack], as they always did.
    status = stack.main(["deploy"], runner=runner)
    if status:
        raise CommandFailed(("scripts/stack.sh", "deploy"), status)
    console.log(f"deployed in {int(runner.clock() - started)}s")


if __name__ == "__main__":
    sys.exit(stack.main(sys.argv[1:], run_command, prefix="deploy"))
