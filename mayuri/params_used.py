"""Which params a run used, and whether an earlier run used the same values.

A job uses a param when it is written into its `run`, `env` or `python`
(known from the experiment file), or when it reads it through
`mayuri.params()` (recorded by the job as it reads, see `mayuri.job.UsedParams`).
It uses all of them when it reads the whole mapping, opens params.json
itself, runs no tracked Python (nothing can tell what it read), or its job
says `cache: strict`. "All" is recorded as None, which is also what a run
recorded before this was known holds: such a run is matched on every param.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mayuri.job import PARAMS_FILE, PARAMS_USED_FILE

ALL = "*"
# The closure record of a process opening its run's params.json (closure/site/sitecustomize.py writes
# it; a letter of its own: the C tracer's `p` is a path looked at).
PARAMS_OPENED = "J"
_MISSING = object()


def used_params(run_dir: Path, closure_dir: Path, static: Iterable[str], strict: bool) -> list[str] | None:
    """The sorted dotted names of the params a finished run used; None when it used them all."""
    if strict or _all_params_may_count(run_dir, closure_dir):
        return None
    used = set(static)
    try:
        read = (run_dir / PARAMS_USED_FILE).read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        read = []
    for name in read:
        if name == ALL:
            return None
        if name:
            used.add(name)
    return sorted(_outermost(used))


def _outermost(names: set[str]) -> set[str]:
    """Drop `model.width` when `model` is used whole."""
    return {n for n in names if not any(n.startswith(other + ".") for other in names if other != n)}


def _all_params_may_count(run_dir: Path, closure_dir: Path) -> bool:
    """Whether every param must count: no Python process of the job was audited (then nothing tells
    which params a program read: the C tracer alone sees files, not keys), or a process opened
    params.json itself (mayuri.params() reads no file when it can), seen by the audit hook or the tracer."""
    # Imported here: only a finished run needs it, never the warm cache check.
    from mayuri.closure.collect import read_records

    params_file = {os.path.join(os.path.abspath(run_dir), PARAMS_FILE), os.path.join(os.path.realpath(run_dir),
                                                                                       PARAMS_FILE)}
    audited = False
    for kind, _, path in read_records(closure_dir):
        if kind == "R":
            path = path[path.find("/"):]  # the C tracer's read: "dev,ino,size,mtime_ns,ctime_ns" then the path
        if kind == PARAMS_OPENED or kind in ("r", "R") and path in params_file:
            return True
        # Modules and code are recorded by the audit hook only: a Python process of the job was audited.
        audited = audited or kind in ("m", "c")
    return not audited


def value_at(params: Mapping[str, Any], name: str) -> Any:
    """The value of a dotted param name (a marker when there is none)."""
    value: Any = params
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            # A key with a dot in its own name (`{"a.b": 1}`) is looked up whole.
            return params.get(name, _MISSING)
        value = value[part]
    return value


def same_used(used: list[str] | None, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new` params agree with `old` on every param the earlier run used (all of them when None)."""
    if used is None:
        return dict(old) == dict(new) and _same_types(old, new)
    for name in used:
        before, after = value_at(old, name), value_at(new, name)
        if before is _MISSING or after is _MISSING:
            if before is not after:
                return False
        elif before != after or not _same_types(before, after):
            return False
    return True


def _same_types(old: Any, new: Any) -> bool:
    # 1 == 1.0 == True in Python, not in a job's argv or its JSON.
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return all(_same_types(old[k], new[k]) for k in old.keys() & new.keys())
    if isinstance(old, list) and isinstance(new, list):
        return all(_same_types(a, b) for a, b in zip(old, new, strict=False))
    return type(old) is type(new)


def used_values(used: list[str] | None, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params that count in a fingerprint: the used ones by name (all of them when None)."""
    if used is None:
        return {"*": dict(params)}
    values = {name: value_at(params, name) for name in used}
    return {"used": {k: v for k, v in values.items() if v is not _MISSING},
            "absent": sorted(k for k, v in values.items() if v is _MISSING)}
