"""Runs mypy over the package as it is installed: `mayuri/`, with `tui/` as `mayuri.tui` and
`schema/` as `mayuri.schema`.

Why a link tree: pyproject.toml maps `tui/` and `schema/` into the package (`package-dir`), and
mypy cannot follow that mapping (nor the editable install's import hook). Checked as plain folders,
every `mayuri.tui` import would be unresolved and every dashboard name typed `Any`, so errors in the
dashboard and in the migrations went unseen. In a temporary folder this builds `mayuri/` with one
symbolic link per source file, as the wheel lays them out, and runs `mypy -p mayuri` there with the
repository's configuration; paths in its report are mapped back to the repository's.

Usage: python scripts/typecheck.py [--tree DIR] [mypy options...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Where each part of the installed package lives in the repository (pyproject's package-dir).
LAYOUT = {"mayuri": REPO / "mayuri", "mayuri/tui": REPO / "tui", "mayuri/schema": REPO / "schema"}


def build_link_tree(dest: Path) -> Path:
    """Lays out the package under `dest` as links to the repository's files; returns `dest`."""
    for installed, source in LAYOUT.items():
        for path in source.rglob("*.py"):
            relative = path.relative_to(source)
            if "__pycache__" in relative.parts:
                continue
            link = dest / installed / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return dest


def to_repository_paths(report: str) -> str:
    """Rewrites `mayuri/tui/...` and `mayuri/schema/...` in mypy's report to `tui/...`, `schema/...`."""
    lines = []
    for line in report.splitlines():
        for installed, source in sorted(LAYOUT.items(), key=lambda item: -len(item[0])):
            if line.startswith(installed + "/"):
                line = source.relative_to(REPO).as_posix() + line[len(installed):]
                break
        lines.append(line)
    return "\n".join(lines)


def run_mypy(tree: Path, extra: list[str]) -> subprocess.CompletedProcess[str]:
    """mypy over the link tree in `tree`, configured by the repository's pyproject.toml."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), *extra, "-p", "mayuri"],
        cwd=tree, capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def main(argv: list[str]) -> int:
    tree_arg = None
    if argv[:1] == ["--tree"]:
        tree_arg, argv = argv[1], argv[2:]
    with tempfile.TemporaryDirectory(prefix="mayuri-typecheck-") as scratch:
        tree = build_link_tree(Path(tree_arg or scratch))
        done = run_mypy(tree, argv)
    print(to_repository_paths(done.stdout + done.stderr))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
