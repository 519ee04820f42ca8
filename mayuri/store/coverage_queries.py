"""How a run's closure was learned (migration 0008's `run.closure_info`)."""

from __future__ import annotations

import json
from typing import Any

from mayuri.store.db import Store

# What `show` and the dashboard say for each way of learning a closure.
COVERAGE_TEXT = {
    "preload": "every process (file-access tracer)",
    "python": "Python reads only",
}


def closure_coverage(store: Store, run_id: str) -> dict[str, Any]:
    """`tracer` ("preload" or "python"), `untracked` and `unseen` (paths) of a run; {} when not recorded."""
    row = store.db.execute_sql("SELECT closure_info FROM run WHERE id = ?", (run_id,)).fetchone()
    if row is None or not row[0]:
        return {}
    try:
        info = json.loads(row[0])
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def coverage_text(info: dict[str, Any]) -> str:
    """`closure: ...` as users read it, or `-` for a run recorded before it was kept."""
    tracer = info.get("tracer")
    text = COVERAGE_TEXT.get(tracer, "-") if isinstance(tracer, str) else "-"
    unseen = info.get("unseen")
    if isinstance(unseen, list) and unseen:
        # Statically linked programs: no preload reaches them, so their reads are missing.
        text += "; not seen: " + ", ".join(map(str, unseen)) + " (statically linked; declare its inputs:)"
    return text
