#!/usr/bin/env bash
# The compose stack's day-to-day tasks, called by the Makefile and the stack suite:
#   scripts/stack.sh up|deploy|migrate|superuser|backup|restore FILE|local-certs|trust-ca [FILE]
# The logic (settings refused, connection budgets, the zero-downtime deploy and its
# waits) is scripts/stack.py, unit-tested in tests/scripts/; `--help` describes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" -m scripts.stack "$@"
