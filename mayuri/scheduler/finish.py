"""Recording what a finished attempt used and produced: closure, code blobs, environment, outputs.

The closure is hashed after the job ends; an input whose identity (device,
inode, size, mtime, ctime) differs from the one it had when the job first
opened it may not be the version it read, so such a run is recorded but not
made reusable (its fingerprint is left empty, with the reason). A job that left no
closure records (no process of it was traced) costs no hashing, no store query
and no blob write. What is computed here is written to the store by the
loop, in the transaction that records the attempt's end.

Closing a run is isolated (`close_run`): any error while reading its
outputs, hashing its closure or copying its code into blobs fails that run
alone, with a one-line reason, and the scheduler goes on with the others.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mayuri.closure import Closure, collect_closure
from mayuri.closure.collect import Identity, static_program
from mayuri.closure.launch import tracer_library
from mayuri.environment import distribution_versions, key_parts
from mayuri.experiment.expand import JobInstance
from mayuri.experiment.shard_expand import is_reduction, shard_part
from mayuri.experiment.upstream_positions import by_position, reads_by_position
from mayuri.filestate import current_digests
from mayuri.fingerprint import config_key, fingerprint, used_key
from mayuri.hashing import ABSENT
from mayuri.job import read_outputs
from mayuri.params_used import used_params
from mayuri.results import result_key
from mayuri.store.blobs import write_blobs
from mayuri.store.db import Store, StoreLocked
from mayuri.store.records import ClosureRow, RunClose
from mayuri.text_files import keeps_as_text
from mayuri.upstream_reads import READS_KEY, partial_upstream

# Removing a closure folder costs a few rmdir calls on a slow filesystem; the loop need not wait for them.
_cleaner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mayuri-cleanup")


@dataclass(frozen=True)
class Recorded:
    """A finished run's closure, environment and fingerprint (None when not reusable)."""

    closure: list[ClosureRow]
    environment: dict[str, Any]
    fingerprint: str | None
    note: str | None
    # How the closure was learned ("tracer": "preload" or "python") and the untracked reads.
    coverage: dict[str, Any] = field(default_factory=dict)
    # The params the run used (None: all of them) and the hash of their values.
    params_used: list[str] | None = None
    used_key: str | None = None
    # The upstreams' output keys, when the run counts only the upstream files it read (then in coverage).
    upstream: dict[str, list[str]] | None = None


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


def gather_closure(closure: Closure, root: Path, inputs: tuple[str, ...],
                   shard_files: Sequence[str] = ()) -> list[tuple[str, str, str]]:
    """(role, path, kind) of everything the job used and made: traced files plus declared `inputs:`.

    A shard's files (`shards: {files: ...}`) are inputs even of a command that
    is not audited; without their folder's listing, so that a file added to
    another shard's share leaves this shard alone.
    """
    entries: dict[tuple[str, str], str] = {}
    for path in shard_files:
        entries[(path, "file")] = "input"
    for path in closure.code:
        entries[(path, "file")] = "code"
    for path in closure.inputs:
        entries.setdefault((path, "file"), "input")
    for path in closure.products:
        entries.setdefault((path, "file"), "product")
    for path in closure.listings:
        entries.setdefault((path, "listing"), "listing")
    for path in closure.links:
        entries.setdefault((path, "link"), "link")
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
    cache_roots: tuple[Path, ...] = (),
) -> Recorded:
    """Collect the closure of a finished attempt, hash it, keep code and small text files in blobs, fingerprint it."""
    records = _records_in(closure_dir)
    closure = collect_closure(closure_dir, root, [store.root], cache_roots, store.runs) if records else Closure()
    entries = gather_closure(closure, root, instance.job.inputs, (shard_part(instance) or {}).get("files", ()))
    rows: list[ClosureRow] = []
    if entries:
        digests = current_digests(store, root, [(path, kind) for _, path, kind in entries])
        rows = [ClosureRow(role, path, kind, *digests[(path, kind)]) for role, path, kind in entries]
        # Code, and the small text files a job read (its configs), are kept for `diff` and the dashboard;
        # not its products: what a job wrote is its result, checked by digest, not an input to show.
        kept = [row for row in rows if row.sha512 != ABSENT and row.kind == "file" and row.role != "product"
                and (row.role == "code" or keeps_as_text(root / row.path, row.size))]
        if kept:
            write_blobs(store, [(root / row.path, row.sha512) for row in kept])
    environment = dict(base_environment)
    environment["packages"] = distribution_versions(closure.modules) if closure.modules else {}
    note = _changed_while_running(root, rows, started_at, closure.opened)
    used = used_params(run_dir, closure_dir, instance.static_used, strict=instance.job.strict)
    key = used_key(used, instance.key_params)
    _remove_closure_folder(closure_dir, made=records is not None)
    coverage: dict[str, Any] = {"tracer": "preload" if tracer_library() else "python"}
    if closure.untracked:
        coverage["untracked"] = list(closure.untracked)
    unseen = set(closure.unseen)
    if coverage["tracer"] == "preload":
        program = static_program(instance.command, root, os.environ.get("PATH"))
        if program is not None:
            unseen.add(program)
    if unseen:
        coverage["unseen"] = sorted(unseen)
    # Only what every process of the job was seen reading may stand for the upstreams' files.
    partial = partial_upstream(store, run_dir.name, upstream, closure) \
        if upstream and records and coverage["tracer"] == "preload" and not unseen and not is_reduction(instance) \
        else None
    # What the run records and its fingerprint covers name each upstream by position, not by name.
    where = instance.positions
    counted = by_position(partial[0], where) if partial is not None else None
    reads = reads_by_position(partial[1], where) if partial is not None else []
    if partial is not None:
        coverage[READS_KEY] = [list(read) for read in reads]
    fp = None if note else fingerprint(config_key(instance.base_hash, key), counted or by_position(upstream, where),
                                       rows, key_parts(key_env, environment), reads)
    return Recorded(closure=rows, environment=environment, fingerprint=fp, note=note, coverage=coverage,
                    params_used=used, used_key=key, upstream=counted)


def _changed_while_running(
    root: Path, rows: list[ClosureRow], started_at: float, opened: Mapping[str, Identity]
) -> str | None:
    """Why the run cannot be reused because an input changed under the job; None when none did.

    A file whose identity at its first open was recorded must still have it
    (ctime cannot be set back: a rename over it, `cp -p` or `touch -r` change
    it). Other files (declared inputs) must not have an mtime between the
    start and now; a future mtime (clock skew, an unpacked archive) is no
    change: the stat cache hashes such a file every time instead.
    """
    start_ns = int(started_at * 1e9)
    now_ns = time.time_ns()
    for row in rows:
        if row.kind != "file" or row.sha512 == ABSENT or row.role == "product":
            continue
        try:
            st = os.stat(root / row.path)
        except OSError:
            continue
        before = opened.get(row.path)
        if before is not None:
            if before != (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
                return f"not reusable: {row.path} was replaced while the job ran"
        elif start_ns < st.st_mtime_ns <= now_ns:
            return f"not reusable: {row.path} changed while the job ran"
    return None


@dataclass(frozen=True)
class Closed:
    """How a finished run closes, with what the plan needs of it (its fingerprint, its outputs)."""

    close: RunClose
    fingerprint: str | None
    outputs: dict[str, Any]


def one_line(exc: BaseException) -> str:
    """An exception as one line of a run's error: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def close_run(
    store: Store, root: Path, instance: JobInstance, run_dir: Path, closure_dir: Path, started_at: float,
    upstream: Mapping[str, list[str]], key_env: tuple[str, ...], base_environment: Mapping[str, Any],
    cache_roots: tuple[Path, ...] = (), *, status: str, code: int, error: str | None, results: bool = False,
    unreusable: str | None = None,
) -> Closed:
    """How a run whose job ended closes: outputs, declared outputs checked, closure, fingerprint.

    A locked store is raised (the caller waits it out); any other error fails
    this run alone, with why, and records neither closure nor fingerprint.
    """
    try:
        outputs = read_outputs(run_dir)
        missing = [name for name in instance.job.outputs if name not in outputs]
        if status == "succeeded" and missing:
            status = "failed"
            error = "exited 0 but did not set declared output " + ", ".join(f"'{m}'" for m in missing) + \
                " (call mayuri.output(name, value) in the job)"
        recorded = record_attempt(store, root, instance, run_dir, closure_dir, started_at, upstream, key_env,
                                  base_environment, cache_roots)
        if unreusable is not None:
            # Recorded with its closure, but never reused: what it ran on is not what the head has.
            recorded = replace(recorded, fingerprint=None, note=unreusable)
        fp = recorded.fingerprint if status == "succeeded" else None
        # The content of the results a downstream job receives (see mayuri/results.py), for early cutoff.
        content = result_key(run_dir, outputs) if results and fp is not None else None
    except StoreLocked:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, it is this run's failure, not the scheduler's
        reason = f"recording the run failed: {one_line(exc)}"
        return Closed(RunClose("failed", code, reason, environment=dict(base_environment)), None, {})
    close = RunClose(status, code, error or recorded.note, fingerprint=fp,
                     closure=tuple(recorded.closure), environment=recorded.environment, outputs=outputs,
                     closure_info=recorded.coverage, params_used=recorded.params_used, used_key=recorded.used_key,
                     result_key=content, upstream=recorded.upstream)
    return Closed(close, recorded.fingerprint, outputs)
