"""The wheel holds every module, migration, schema and stylesheet, and `mayuri` stays light to import."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Source folder -> the package name it is installed as.
MAPPED = {"mayuri": "mayuri", "tui": "mayuri/tui", "schema": "mayuri/schema"}


@pytest.mark.slow
def test_wheel_contains_every_source_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    [wheel] = tmp_path.glob("mayuri-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = []
    for folder, package in MAPPED.items():
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".tcss", ".json") and "__pycache__" not in path.parts:
                installed = f"{package}/{path.relative_to(ROOT / folder).as_posix()}"
                if installed not in names:
                    missing.append(installed)
    assert not missing, f"not in the wheel (list the package in pyproject.toml): {missing}"


def test_importing_mayuri_pulls_in_nothing_heavy() -> None:
    code = (
        "import json, sys, mayuri, mayuri.cli;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'torch', 'transformers', 'pynvml', 'numpy', 'pandas'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
