"""Mayuri: an embedded experiment store and GPU scheduler.

Inside a job, `import mayuri` gives the in-job API (`mayuri.params()`,
`mayuri.log()`, `mayuri.output()`, `mayuri.artifact()`, ...); in a notebook,
`mayuri.runs(...)` reads runs back. Importing this package stays cheap:
nothing heavy (no database, no textual, no torch) is imported here; the
read-back API is imported on first use.
"""

from __future__ import annotations

from typing import Any

from mayuri.job import (
    artifact,
    checkpoint_dir,
    current_run,
    finish,
    init,
    log,
    output,
    params,
    resume_from,
)

__version__ = "0.1.0"

# Loaded on first use: they open the store (peewee), which a job that only logs never needs.
_LAZY = {"runs": "mayuri.notebook", "get_run": "mayuri.notebook"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mayuri' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "__version__",
    "artifact",
    "checkpoint_dir",
    "current_run",
    "finish",
    "get_run",
    "init",
    "log",
    "output",
    "params",
    "resume_from",
    "runs",
]
