#!/usr/bin/env bash
# Creates .venv (if missing) and installs Mayuri into it in editable mode.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip "setuptools>=77"
if [ -n "$extras" ]; then
  case ",$extras," in
    *,test,*|*,torch,*|*,transformers,*)
      # torch first, pinned, and kept pinned by a constraint: installed later
      # (by accelerate), pip picks a newer torch with CUDA wheels instead.
      .venv/bin/python -m pip install --quiet torch==2.13.0
      export PIP_CONSTRAINT="$PWD/scripts/constraints.txt"
      ;;
  esac
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
# Bytecode ahead of time: with PYTHONDONTWRITEBYTECODE set (as on our machines)
# Python would otherwise recompile Mayuri on every `mayuri` command.
.venv/bin/python -m compileall -q mayuri tui examples
