#!/usr/bin/env bash
# `make deploy` and CI's deploy job (.github/workflows/deploy.yml): deploy the stack
# with compose on the current Docker engine, zero-downtime when a release serves.
# The logic is scripts/deploy.py and scripts/stack.py; `--help` describes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" -m scripts.deploy "$@"
