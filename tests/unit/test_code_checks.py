"""The code checks that run in CI: ruff (errors and likely bugs) and mypy (types), on the whole tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKED = ["mayuri", "tui", "tests", "benchmarks", "scripts", "examples", "schema"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "--no-cache", *CHECKED)
    assert done.returncode == 0, done.stdout + done.stderr


# A wrong call between two dashboard modules: before scripts/typecheck.py, mypy could not resolve
# `mayuri.tui`, typed every dashboard import `Any`, and let this pass.
PLANTED_ERROR = """

def _planted_type_error() -> None:
    from mayuri.tui.formatting import main_metric
    main_metric(42)
"""


@pytest.mark.slow
def test_mypy_checks_the_package_with_the_dashboard_and_migrations(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import typecheck
    finally:
        sys.path.remove(str(REPO / "scripts"))
    tree = typecheck.build_link_tree(tmp_path / "tree")
    cache = ["--cache-dir", str(tmp_path / "mypy")]
    done = typecheck.run_mypy(tree, cache)
    assert done.returncode == 0, typecheck.to_repository_paths(done.stdout + done.stderr)
    assert (tree / "mayuri/tui/app.py").exists() and (tree / "mayuri/schema/migrations/0001_initial.py").exists()

    planted = tree / "mayuri" / "tui" / "screens" / "runs_screen.py"
    text = planted.read_text(encoding="utf-8")
    planted.unlink()
    planted.write_text(text + PLANTED_ERROR, encoding="utf-8")
    done = typecheck.run_mypy(tree, cache)
    assert done.returncode == 1
    assert "mayuri/tui/screens/runs_screen.py" in done.stdout and "main_metric" in done.stdout
