#!/usr/bin/env bash
# Installs Mayuri with its test dependencies into .venv and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
# loadgroup: tests marked with one xdist_group share a worker (tests/ray/ share one Ray cluster).
# 4 workers on 2 cores: most tests wait on real processes (jobs, schedulers, a cluster), and with 2
# workers the cores were idle 40% of the run; 4 took 245 s for the whole suite against about 320 s.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-4}" --dist loadgroup "$@"
