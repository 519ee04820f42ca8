"""Recording what a finished attempt used and produced: closure, code blobs, environment, outputs.

The closure is hashed after the job ends; a file modified while the job ran
may not be the version it read, so such a run is recorded but not made
reusable (its fingerprint is left empty, with the reason). A job that left no
closure records (it ran no tracked Python) costs no hashing, no store query
and no blob write. What is computed here is written to the store by the
loop, in the transaction that records the attempt's end.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayuri.closure import Closure, collect_closure
from mayuri.environment import distribution_versions, key_parts
from mayuri.experiment.expand import JobInstance
from mayuri.filestate import current_digests
from mayuri.fingerprint import config_key, fingerprint, used_key
from mayuri.hashing import ABSENT
from mayuri.params_used import used_params
from mayuri.store.blobs import write_blobs
from mayuri.store.db import Store
from mayuri.store.records import ClosureRow

# Removing a closure folder costs a few rmdir calls on a slow filesystem; the loop need not wait for them.
_cleaner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mayuri-cleanup")


@dataclass(frozen=True)
class Recorded:
    """A finished run's closure, environment and fingerprint (None when not reusable)."""

    closure: list[ClosureRow]
    environment: dict[str, Any]
    fingerprint: str | None
    note: str | None
    # The params the run used (None: all of them) and the hash of their values.
    params_used: list[str] | None = None
    used_key: str | None = None


def _declared_inputs(root: Path, patterns: tuple[str, ...]) -> tuple[set[str], set[str]]:
    files: set[str] = set()
    folders: set[str] = set()
    for pattern in patterns:
        static = []
        for part in Path(pattern).parts:
            if glob.has_magic(part):
                break
            static.append(part)
        base = Path(*static) if static else Path(".")
        if (root / base).is_dir():
            folders.add(base.as_posix())
        for match in glob.glob(pattern, root_dir=root, recursive=True):
            path = Path(match)
            if (root / path).is_file():
                files.add(path.as_posix())
                folders.add(path.parent.as_posix())
    return files, folders


def gather_closure(closure: Closure, root: Path, inputs: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(role, path, kind) of everything the job used: audited files plus declared `inputs:`."""
    entries: dict[tuple[str, str], str] = {}
    for path in closure.code:
        entries[(path, "file")] = "code"
    for path in closure.inputs:
        entries.setdefault((path, "file"), "input")
    for path in closure.listings:
        entries.setdefault((path, "listing"), "listing")
    files, folders = _declared_inputs(root, inputs)
    for path in files:
        entries.setdefault((path, "file"), "input")
    for path in folders:
        entries.setdefault((path, "listing"), "listing")
    return [(role, path, kind) for (path, kind), role in sorted(entries.items())]


def _records_in(closure_dir: Path) -> bool | None:
    """Whether the job left closure records (None: its processes never made the folder)."""
    try:
        return any(name.endswith(".rec") for name in os.listdir(closure_dir))
    except FileNotFoundError:
        return None


def _remove_closure_folder(closure_dir: Path, made: bool) -> None:
    # Empty folders go at once (an rmdir each); records are left to the
    # cleaner thread, off the loop. The folder of an earlier attempt (a retry)
    # may be there even when this attempt's is not.
    folders = (str(closure_dir), os.path.dirname(closure_dir)) if made else (os.path.dirname(closure_dir),)
    try:
        for folder in folders:
            os.rmdir(folder)
    except FileNotFoundError:
        pass
    except OSError:
        _cleaner.submit(shutil.rmtree, closure_dir.parent, True)


def record_attempt(
    store: Store,
    root: Path,
    instance: JobInstance,
    run_dir: Path,
    closure_dir: Path,
    started_at: float,
    upstream: Mapping[str, list[str]],
    key_env: tuple[str, ...],
    base_environment: Mapping[str, Any],
) -> Recorded:
    """Collect the closure of a finished attempt, hash it, keep code in blobs, fingerprint it."""
    records = _records_in(closure_dir)
    closure = collect_closure(closure_dir, root, [store.root]) if records else Closure()
    entries = gather_closure(closure, root, instance.job.inputs)
    rows: list[ClosureRow] = []
    if entries:
        digests = current_digests(store, root, [(path, kind) for _, path, kind in entries])
        rows = [ClosureRow(role, path, kind, *digests[(path, kind)]) for role, path, kind in entries]
        code = [row for row in rows if row.role == "code" and row.sha512 != ABSENT]
        if code:
            write_blobs(store, [(root / row.path, row.sha512) for row in code])
    environment = dict(base_environment)
    environment["packages"] = distribution_versions(closure.modules) if closure.modules else {}
    note = _changed_while_running(root, rows, started_at)
    used = used_params(run_dir, closure_dir, instance.static_used, tracked=bool(records), strict=instance.job.strict)
    key = used_key(used, instance.params)
    fp = None if note else fingerprint(config_key(instance.base_hash, key), upstream, rows,
                                       key_parts(key_env, environment))
    _remove_closure_folder(closure_dir, made=records is not None)
    return Recorded(closure=rows, environment=environment, fingerprint=fp, note=note, params_used=used, used_key=key)


def _changed_while_running(root: Path, rows: list[ClosureRow], started_at: float) -> str | None:
    start_ns = int(started_at * 1e9)
    for row in rows:
        if row.kind != "file" or row.sha512 == ABSENT:
            continue
        try:
            if os.stat(root / row.path).st_mtime_ns > start_ns:
                return f"not reusable: {row.path} changed while the job ran"
        except OSError:
            continue
    return None
