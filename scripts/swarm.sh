#!/usr/bin/env bash
# The stack on Docker Swarm (`make deploy-swarm`, `swarm-ps`, `swarm-down`):
#   scripts/swarm.sh deploy|ps|down
# The logic is scripts/swarm.py (and scripts/swarm_stack.py for the stack file);
# `--help` describes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" -m scripts.swarm "$@"
