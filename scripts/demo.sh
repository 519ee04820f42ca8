#!/usr/bin/env bash
# Installs Mayuri into .venv and runs the example experiment (twice: the second run is all cached).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/mayuri init
.venv/bin/mayuri run examples/addition/exp.yaml
.venv/bin/mayuri run examples/addition/exp.yaml
.venv/bin/mayuri runs
