"""Ad-hoc runs: `mayuri.init(experiment=...)` in a script or notebook started by hand.

The process becomes its own (one-attempt) run in the project's store: the run
row is `running` with this process as its owner, and the MAYURI_* variables
are set so that the rest of the in-job API (`log`, `output`, `artifact`,
`params`) works as in a job, child processes included. At exit, or on
`mayuri.finish()`, metrics are written out, outputs recorded and the run closed:
`succeeded`, `failed` after an uncaught exception or `sys.exit` with a failing
status (its exit code is recorded), `cancelled` after Ctrl-C.

Must not: be used inside a job that Mayuri launched (`init` returns that run).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from mayuri.config import load_settings
from mayuri.environment import platform_info, python_info
from mayuri.hashing import hash_structure
from mayuri.job import PARAMS_FILE, read_outputs
from mayuri.run_contract import ATTEMPT_VAR, PROJECT_ROOT_VAR, RUN_DIR_VAR, RUN_ID_VAR, STORE_VAR
from mayuri.store.perms import make_dirs
from mayuri.store.records import (
    create_run,
    ensure_experiment,
    finish_attempt,
    finish_run,
    new_run_id,
    start_attempt,
)
from mayuri.tracking.artifacts import process_store

_VARIABLES = (RUN_ID_VAR, RUN_DIR_VAR, STORE_VAR, ATTEMPT_VAR, PROJECT_ROOT_VAR)


@dataclass
class _Active:
    run_id: str
    store_root: Path
    error: str | None = None
    status: str | None = None
    exit_code: int | None = None


_active: _Active | None = None
_lock = threading.Lock()
_hooked = False


def _job_name() -> str:
    if "ipykernel" in sys.modules:
        return "notebook"
    return Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "adhoc"


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    active = _active
    if active is not None:
        active.status = "cancelled" if issubclass(kind, KeyboardInterrupt) else "failed"
        active.error = f"{kind.__name__}: {value}"
    _previous_hook(kind, value, tb)


_previous_hook = sys.excepthook
_previous_exit = sys.exit


def _exit(status: str | int | None = None) -> NoReturn:
    """`sys.exit` that first notes a failing status: SystemExit never reaches the excepthook,
    and an atexit handler cannot see the exit status."""
    active = _active
    if active is not None and status not in (None, 0):
        active.status = "failed"
        active.exit_code = status if isinstance(status, int) else 1
        active.error = f"sys.exit({status!r})"
    _previous_exit(status)


def start_adhoc(experiment: str, params: dict[str, Any], job: str | None) -> str:
    """Create a running ad-hoc run in the project's store and make this process its job."""
    global _active, _hooked
    if not isinstance(experiment, str) or not experiment.strip():
        raise ValueError("mayuri.init: experiment must be a non-empty name.")
    settings = load_settings()
    store = process_store(
        settings.store.path, allow_network_fs=settings.store.allow_network_fs, create=True,
        busy_timeout=settings.store.busy_timeout,
    )
    run_id = new_run_id()
    run_dir = make_dirs(store.runs / run_id, store.root)
    with open(run_dir / PARAMS_FILE, "w", encoding="utf-8") as handle:
        json.dump(params, handle, indent=2, sort_keys=True)
    create_run(
        store, run_id=run_id, experiment_id=ensure_experiment(store, experiment),
        job=job or _job_name(), kind="adhoc", config_hash=hash_structure("adhoc-config", params),
        params=params, config={"command": list(sys.argv)}, upstream={},
        reason="ad-hoc run (mayuri.init)", run_dir=run_dir, status="running",
    )
    import psutil

    start_attempt(store, run_id, 1, pid=os.getpid(), pid_create_time=psutil.Process().create_time(),
                  params=params)
    os.environ.update({
        RUN_ID_VAR: run_id,
        RUN_DIR_VAR: str(run_dir),
        STORE_VAR: str(store.root),
        ATTEMPT_VAR: "1",
        PROJECT_ROOT_VAR: str(settings.root),
    })
    with _lock:
        _active = _Active(run_id, store.root)
        if not _hooked:
            _hooked = True
            sys.excepthook = _excepthook
            sys.exit = _exit
            atexit.register(_at_exit)
    return run_id


def finish_adhoc(status: str | None = None) -> None:
    """Close the ad-hoc run of this process, if there is one (metrics must be flushed first)."""
    global _active
    with _lock:
        active, _active = _active, None
    if active is None:
        return
    final = status or active.status or "succeeded"
    store = process_store(active.store_root)
    run_dir = store.runs / active.run_id
    cause = None if final == "succeeded" else ("cancelled" if final == "cancelled" else "exception")
    finish_attempt(store, active.run_id, 1, status=final, exit_code=active.exit_code, signal=None, cause=cause)
    finish_run(
        store, active.run_id, status=final, exit_code=active.exit_code, error=active.error,
        environment={"python": python_info(), "platform": platform_info()},
        outputs=read_outputs(run_dir),
    )
    for name in _VARIABLES:
        os.environ.pop(name, None)


def _at_exit() -> None:
    # Registered after mayuri.job's own exit handler, so it runs first: the
    # metrics are written out here, before the run is closed.
    from mayuri.job import finish

    finish()
