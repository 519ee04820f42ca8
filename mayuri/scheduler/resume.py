"""Resuming across runs: a job about to run starts from the checkpoint its interrupted predecessor left.

When the newest earlier run of the same job with the same config was
interrupted (cancelled, orphaned, lost, timed out or failed) and left a
checkpoint in its run folder (`mayuri.checkpoint_dir()`, the Hugging Face
callback's `checkpoint-N` folders), the new run's first attempt gets
`MAYURI_RESUME_FROM` pointing at it, and records which run and step it
resumed from. An interrupted run that left no checkpoint of its own (it was
stopped before its first save) passes on the one it resumed from. A
successful run in between means there is nothing to resume. `mayuri run
--fresh` starts from scratch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mayuri.job import CHECKPOINTS_DIR
from mayuri.store.db import Store
from mayuri.store.scheduler_queries import earlier_runs, last_logged_step

INTERRUPTED = frozenset({"cancelled", "orphaned", "lost", "timeout", "failed"})
# How far back a chain of interrupted runs is followed.
LOOK_BACK = 10
_LAST_NUMBER = re.compile(r"(\d+)\D*$")


@dataclass(frozen=True)
class Resume:
    """Where a new run resumes: the interrupted run, its checkpoint folder, and the step when known."""

    run_id: str
    folder: Path
    step: int | None

    @property
    def note(self) -> str:
        at = f" at step {self.step}" if self.step is not None else ""
        return f"resumed from run {self.run_id[:8]}{at}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint folder of a run's latest attempt that saved one (checkpoints/N, highest N first)."""
    base = run_dir / CHECKPOINTS_DIR
    try:
        numbered = sorted((int(name) for name in os.listdir(base) if name.isdigit()), reverse=True)
    except OSError:
        return None
    for number in numbered:
        folder = base / str(number)
        try:
            if any(entry for entry in os.listdir(folder) if not entry.startswith(".")):
                return folder
        except OSError:
            continue
    return None


def checkpoint_step(folder: Path) -> int | None:
    """The step of the newest checkpoint in a folder, from its entries' names (`checkpoint-200`, `step-40.pt`)."""
    steps = []
    for name in os.listdir(folder):
        match = _LAST_NUMBER.search(name)
        if match and not name.startswith("."):
            steps.append(int(match.group(1)))
    return max(steps) if steps else None


def find_resume(store: Store, experiment: str, job: str, config_hash: str) -> Resume | None:
    """The checkpoint a new run of this job and config should start from, or None."""
    for run_id, status, run_dir in earlier_runs(store, experiment, job, config_hash, LOOK_BACK):
        if status not in INTERRUPTED:
            return None
        folder = latest_checkpoint(Path(run_dir))
        if folder is not None:
            step = checkpoint_step(folder)
            return Resume(run_id, folder, step if step is not None else last_logged_step(store, run_id))
    return None
