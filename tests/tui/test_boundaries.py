"""The dashboard's boundaries: it never imports the scheduler, and `mayuri` never imports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mayuri.tui

TUI_ROOT = Path(mayuri.tui.__file__).parent


def modules_after(imports: list[str]) -> set[str]:
    code = "import json, sys\n" + "".join(f"import {m}\n" for m in imports) + "print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def tui_modules() -> list[str]:
    names = []
    for path in sorted(TUI_ROOT.rglob("*.py")):
        parts = path.relative_to(TUI_ROOT).with_suffix("").parts
        names.append(".".join(("mayuri", "tui", *[p for p in parts if p != "__init__"])))
    return names


def test_no_dashboard_module_imports_the_scheduler() -> None:
    loaded = modules_after(tui_modules())
    assert not [m for m in loaded if m.startswith("mayuri.scheduler")], \
        "the dashboard reads the store through mayuri.store queries and must not import mayuri.scheduler"


def test_mayuri_and_its_cli_do_not_import_textual() -> None:
    loaded = modules_after(["mayuri", "mayuri.cli"])
    assert not [m for m in loaded if m.split(".")[0] in ("textual", "textual_plotext", "plotext")
                or m.startswith("mayuri.tui")]


def test_no_raw_sql_in_the_dashboard() -> None:
    for path in TUI_ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "execute_sql" not in text and "SELECT " not in text, f"{path}: read through mayuri.store queries"
