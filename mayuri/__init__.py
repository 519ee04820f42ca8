"""Mayuri: an embedded experiment store and GPU scheduler.

Inside a job, `import mayuri` gives the in-job API (`mayuri.params()`,
`mayuri.log()`, `mayuri.output()`, `mayuri.artifact()`, `mayuri.shard()`, ...); in a notebook,
`mayuri.runs(...)` reads runs back. Importing this package stays cheap:
nothing is imported here; both APIs are imported on first use.
"""

from __future__ import annotations

# Set by type checkers only: importing `typing` would cost every job's start (~2 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mayuri.job import (
        artifact,
        checkpoint_dir,
        checkpoint_saved,
        current_run,
        finish,
        init,
        log,
        output,
        params,
        resume_from,
    )
    from mayuri.notebook import get_run, runs, runs_frame
    from mayuri.sharding import shard, shard_files, shard_of

__version__ = "0.1.0"

# Loaded on first use: every `mayuri` command imports this package, and only a
# job needs the in-job API; the read-back API opens the store (peewee).
_JOB_API = ("artifact", "checkpoint_dir", "checkpoint_saved", "current_run", "finish", "init", "log", "output",
            "params", "resume_from")
_SHARD_API = ("shard", "shard_files", "shard_of")
_LAZY = {**dict.fromkeys(_JOB_API, "mayuri.job"), **dict.fromkeys(_SHARD_API, "mayuri.sharding"),
         "runs": "mayuri.notebook", "get_run": "mayuri.notebook", "runs_frame": "mayuri.notebook"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mayuri' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    # Kept as a plain attribute: `mayuri.log` may be called once per training step.
    globals()[name] = value
    return value


__all__ = [
    "__version__",
    "artifact",
    "checkpoint_dir",
    "checkpoint_saved",
    "current_run",
    "finish",
    "get_run",
    "init",
    "log",
    "output",
    "params",
    "resume_from",
    "runs",
    "runs_frame",
    "shard",
    "shard_files",
    "shard_of",
]
