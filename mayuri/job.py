"""The in-job side of Mayuri: what `import mayuri` gives a job that Mayuri launched.

Reads the run's environment variables and run folder; never opens the store
database, so a job costs the store nothing until the scheduler records it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayuri.errors import MayuriError

PARAMS_FILE = "params.json"
OUTPUTS_FILE = "outputs.json"


class NotInJob(MayuriError):
    """An in-job function was called outside a job that Mayuri launched."""


@dataclass(frozen=True)
class CurrentRun:
    """The run this process belongs to."""

    id: str
    dir: Path
    store: Path
    attempt: int


def current_run() -> CurrentRun:
    """The run this job is (from MAYURI_RUN_ID, MAYURI_RUN_DIR, MAYURI_STORE, MAYURI_ATTEMPT)."""
    try:
        return CurrentRun(
            id=os.environ["MAYURI_RUN_ID"],
            dir=Path(os.environ["MAYURI_RUN_DIR"]),
            store=Path(os.environ.get("MAYURI_STORE", "")),
            attempt=int(os.environ.get("MAYURI_ATTEMPT", "1")),
        )
    except KeyError:
        raise NotInJob(
            "this is not a job launched by `mayuri run` (MAYURI_RUN_ID is not set).",
            hint="Run it through `mayuri run exp.yaml`.",
        ) from None


def params() -> dict[str, Any]:
    """The job's resolved params (as written to params.json in its run folder)."""
    path = current_run().dir / PARAMS_FILE
    with open(path, encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def _check_json(name: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"mayuri.output({name!r}, ...): the value must be JSON-serialisable ({exc}).") from None


def read_outputs(run_dir: Path) -> dict[str, Any]:
    """The outputs a job set with `output()` (read by the scheduler when the job ends)."""
    try:
        with open(run_dir / OUTPUTS_FILE, encoding="utf-8") as handle:
            loaded: dict[str, Any] = json.load(handle)
            return loaded
    except FileNotFoundError:
        return {}


def output(name: str, value: Any) -> None:
    """Declare a small result (a path, a score) that downstream jobs get through `depends_on`."""
    if not isinstance(name, str) or not name:
        raise ValueError("mayuri.output: the name must be a non-empty string.")
    _check_json(name, value)
    run_dir = current_run().dir
    values = read_outputs(run_dir)
    values[name] = value
    # Written whole to a temporary name and renamed: a crash never leaves half a file.
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".outputs-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(values, handle, sort_keys=True)
    os.replace(tmp, run_dir / OUTPUTS_FILE)
