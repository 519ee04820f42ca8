#!/usr/bin/env bash
# Installs Mayuri with its test dependencies into .venv and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
# loadgroup: tests marked with one xdist_group share a worker (tests/ray/ share one Ray cluster).
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@"
