"""Executors by name: `local` built in, others from the `mayuri.executors` entry-point group.

A backend may live in another package: it declares
`[project.entry-points."mayuri.executors"] NAME = "package.module:Class"`,
the class being an `mayuri.executors.base.Executor`. Which one runs a job:
the job's `executor:` key, else `mayuri run --executor NAME`, else
`[executor] default` in mayuri.toml, else `local`. Entry points are only
read for a name that is not built in, so that a local run pays nothing.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mayuri.errors import ConfigError

if TYPE_CHECKING:
    from mayuri.executors.base import Executor

GROUP = "mayuri.executors"
DEFAULT = "local"
BUILTIN = {
    "local": "mayuri.executors.local:LocalExecutor",
    # Shipped with Mayuri; it needs submitit (`pip install 'mayuri[slurm]'`), checked before a run.
    "slurm": "mayuri.executors.slurm:SlurmExecutor",
}


@functools.cache
def _plugins() -> dict[str, str]:
    # Read once per process: reading every installed distribution's metadata costs about 10 ms, and a plan asks
    # for each job instance.
    from importlib.metadata import entry_points  # here: a local run never reads the entry points

    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def known() -> list[str]:
    """Every executor name this installation knows, built in first."""
    return [*BUILTIN, *sorted(set(_plugins()) - set(BUILTIN))]


def is_known(name: str) -> bool:
    """Whether an executor is registered under `name`."""
    return name in BUILTIN or name in _plugins()


def unknown(name: str) -> str:
    """The sentence that refuses an unknown executor name, listing the known ones."""
    return f"unknown executor '{name}'; known: {', '.join(known())}."


UNKNOWN_HINT = f"Install the package that provides it (entry-point group '{GROUP}'), or name a known one."


def executor_class(name: str) -> type[Executor]:
    """The class registered under `name` (imported, not made)."""
    target = BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        raise ConfigError(unknown(name), hint=UNKNOWN_HINT)
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]


def load(name: str, options: Mapping[str, Any] | None = None) -> Executor:
    """A new executor of that name, configured with its `[executor.NAME]` table."""
    return executor_class(name)(options)


def places_gpus(name: str) -> bool:
    """Whether that executor's engine places its jobs on GPUs itself (not on this host's, through leases)."""
    return name != DEFAULT and executor_class(name).places_gpus


_recorded: dict[str, Executor] = {}


def of_attempt(name: str | None) -> Executor:
    """The executor that ran a recorded attempt (None: recorded before executors were, so local), to ask about it."""
    key = name or DEFAULT
    if key not in _recorded:
        _recorded[key] = load(key)
    return _recorded[key]
