#!/usr/bin/env bash
# Installs Mayuri (with the CPU build of torch the example needs) into .venv and runs the
# example experiment: once for real, once more (all cached), then its test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh torch
.venv/bin/mayuri init
.venv/bin/mayuri run examples/addition/exp.yaml
.venv/bin/mayuri run examples/addition/exp.yaml
.venv/bin/mayuri test examples/addition/exp.yaml
.venv/bin/mayuri runs --experiment addition
