"""Write the production `.env` for a CI deploy from the GitHub environment.

    SECRETS_JSON='${{ toJSON(secrets) }}' VARS_JSON='${{ toJSON(vars) }}' \
        python3 -m scripts.deploy_env > .env

Every setting of `.env.example` that the environment defines, as a secret or a
variable, is written; the rest keep the example's defaults. There is no list of
names to keep up: a setting added to the declaration (app/settings/) reaches the
deploy as soon as the environment defines it. The deploy stops, saying why, when a
setting [required in production] is missing, when a [secret] is stored as a plain
variable (its value would show in logs), when a name is both, or when a value holds
a single quote (`.env` quotes with them). Names that are no setting are reported,
not written: most often a typo. Standard library only: it runs on the runner.
"""

import json
import os
import sys
from collections.abc import Mapping

from scripts.env_example import EXAMPLE, example_settings
from scripts.init_env import render

# Always so for this workflow: it deploys production, with Let's Encrypt.
FORCED = {"ENVIRONMENT": "production", "CERT_RESOLVER": "letsencrypt"}
# The workflow's own names, read by its steps, never by the stack.
WORKFLOW_NAMES = {"DEPLOY_ROUTE", "REGISTRY", "REGISTRY_USERNAME", "REGISTRY_PASSWORD"}
# Compose's own variables, no setting of the stack, written when given: the files
# (compose.yaml:compose.external-db.yaml for a managed database, docs/deploy.md).
COMPOSE_NAMES = {"COMPOSE_FILE"}


class DeployEnvError(ValueError):
    pass


def _given(text: str, what: str) -> dict[str, str]:
    values = json.loads(text or "{}")
    if not isinstance(values, dict):
        raise DeployEnvError(f"{what} is not a JSON object")
    # GitHub's own token (github_token) and anything else not in upper case.
    return {str(k): str(v) for k, v in values.items() if str(k).isupper() and v not in ("", None)}


def deploy_values(
    secrets: Mapping[str, str], variables: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The values to write, and notes on names that were ignored."""
    declared = {setting.name: setting for setting in example_settings()}
    problems, notes, values = [], [], {}
    for name in sorted(set(secrets) | set(variables)):
        setting = declared.get(name)
        if name in COMPOSE_NAMES and name in variables:
            values[name] = variables[name]
            continue
        if setting is None:
            if name not in WORKFLOW_NAMES:
                notes.append(f"{name} is not a setting of the stack (.env.example): not written")
            continue
        if name in secrets and name in variables:
            problems.append(f"{name} is both a secret and a variable: keep one")
        elif setting.secret and name not in secrets:
            problems.append(f"{name} is a secret: store it as an environment secret")
        elif name in FORCED:
            notes.append(f"{name} is always {FORCED[name]!r} for this deploy: ignored")
        else:
            values[name] = secrets.get(name) or variables[name]
    missing = sorted(
        name
        for name, setting in declared.items()
        if setting.required_in_production and name not in values
    )
    if missing:
        problems.append("required in production, not set: " + ", ".join(missing))
    problems += [f"{name} contains a single quote" for name, v in values.items() if "'" in v]
    if problems:
        raise DeployEnvError("; ".join(problems))
    return values | FORCED, notes


def main() -> int:
    try:
        values, notes = deploy_values(
            _given(os.environ.get("SECRETS_JSON", ""), "SECRETS_JSON"),
            _given(os.environ.get("VARS_JSON", ""), "VARS_JSON"),
        )
    except DeployEnvError as error:
        print(f"::error::{error}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"::warning::{note}", file=sys.stderr)
    sys.stdout.write(render(EXAMPLE.read_text(), values))
    print(f"set from the environment: {', '.join(sorted(values))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
