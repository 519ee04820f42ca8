"""Writes to the store: runs, attempts, closures, outputs, lineage, cache hits.

Every public function here writes inside one `store.write()` transaction
(BEGIN IMMEDIATE), so that concurrent `mayuri run` processes never see half a
record and never upgrade a read lock into a write. The `*_rows` helpers write
the rows of one record through a raw connection and open no transaction:
they are the parts from which the scheduler builds its own larger
transactions (`attempt_records.py`), so that a run and its first attempt, or
an attempt's end and its run's close, are written at once.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.config import current_user
from mayuri.hashing import canonical_json
from mayuri.store.db import Store
from mayuri.store.run_manifest import write_manifests
from mayuri.store.state_checks import check_attempt, check_new_run, check_runs


@dataclass(frozen=True)
class ClosureRow:
    """One entry of a run's closure as stored: role, project-relative path, kind, digest, size."""

    role: str
    path: str
    kind: str
    sha512: str
    size: int


def new_run_id() -> str:
    """A fresh run id: 32 hex digits, random, so that prefixes are evenly spread."""
    return uuid.uuid4().hex


def ensure_experiment(store: Store, name: str) -> int:
    """The id of experiment `name`, created on first use."""
    query = "SELECT id FROM experiment WHERE name = ?"
    row = store.db.execute_sql(query, (name,)).fetchone()
    if row is not None:
        return int(row[0])
    with store.write():
        store.db.execute_sql(
            "INSERT OR IGNORE INTO experiment (name, created_at) VALUES (?, ?)", (name, time.time())
        )
        return int(store.db.execute_sql(query, (name,)).fetchone()[0])


@dataclass(frozen=True)
class RunOrigin:
    """The experiment file and the `KEY=VALUE` overrides a run was started with."""

    source: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewRun:
    """A run about to be launched, as its row (and its lineage) will record it."""

    run_id: str
    experiment_id: int
    job: str
    kind: str
    config_hash: str
    params: Mapping[str, Any]
    config: Mapping[str, Any]
    upstream: Mapping[str, Any]
    reason: str
    run_dir: str
    parents: Mapping[str, str] = field(default_factory=dict)
    origin: RunOrigin = RunOrigin()
    # The config's hash without params, the params naming the instance (with its upstreams'),
    # and the key of the work it claims while it is queued or running (None: no claim).
    base_hash: str | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)
    claim: str | None = None


@dataclass(frozen=True)
class RunClose:
    """How a run ends: status, closure with digests, environment, outputs and fingerprint."""

    status: str
    exit_code: int | None
    error: str | None = None
    fingerprint: str | None = None
    closure: tuple[ClosureRow, ...] = ()
    environment: Mapping[str, Any] | None = None
    outputs: Mapping[str, Any] | None = None
    # How the closure was learned and its untracked reads (migration 0008).
    closure_info: Mapping[str, Any] | None = None
    # The params the run used (None: all), their values' hash, and its results' content key.
    params_used: list[str] | None = None
    used_key: str | None = None
    result_key: str | None = None
    # The upstream keys the run counts, when not those it was launched with: the output keys of a
    # run that counts only the upstream files it read (mayuri/upstream_reads.py).
    upstream: Mapping[str, list[str]] | None = None


@functools.cache
def _recorder() -> tuple[str, str]:
    # Who and where a run is recorded from: read once per process, as it is
    # needed for every run (the user may take a read of /etc/passwd).
    return current_user(), socket.gethostname()


def insert_run_rows(
    conn: sqlite3.Connection, run: NewRun, *, status: str, now: float, scheduler_id: str | None = None,
    started: bool = False, error: str | None = None,
) -> None:
    """Insert a run and its lineage; the caller holds the write transaction."""
    check_new_run(run.run_id, status)
    user, host = _recorder()
    conn.execute(
        "INSERT INTO run (id, experiment_id, job, kind, status, config_hash, params, config, upstream, reason, "
        "error, created_at, started_at, ended_at, user, host, run_dir, scheduler_pid, scheduler_id, source, "
        "overrides, base_hash, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run.run_id, run.experiment_id, run.job, run.kind, status, run.config_hash, canonical_json(run.params),
         canonical_json(run.config), canonical_json(run.upstream), run.reason, error, now,
         now if started else None, now if status not in ("queued", "running") else None, user, host,
         run.run_dir, os.getpid(), scheduler_id, run.origin.source,
         json.dumps(list(run.origin.overrides)) if run.origin.overrides else None,
         # In the label's order (not sorted): `show` and `runs` name the run as `run` did.
         run.base_hash, json.dumps(dict(run.labels), separators=(",", ":")) if run.labels else None),
    )
    if run.claim is not None and status in ("queued", "running"):
        conn.execute("INSERT OR REPLACE INTO run_claim (key, run_id, scheduler_id, created_at) VALUES (?, ?, ?, ?)",
                     (run.claim, run.run_id, scheduler_id, now))
    if run.parents:
        conn.executemany(
            "INSERT OR IGNORE INTO lineage (parent_id, child_id, name) VALUES (?, ?, ?)",
            [(parent, run.run_id, name) for name, parent in run.parents.items()],
        )


# What a run's fingerprint covers (run.fingerprint_version, migration 0009): the config without
# params, the params the run used and its upstreams' results; 3: its upstreams named by their
# position in depends_on (migration 0018), 2: by their name. NULL: the whole config hash and
# the upstreams' fingerprints (runs recorded before).
FINGERPRINT_VERSION = 3


def close_run_rows(conn: sqlite3.Connection, run_id: str, close: RunClose, now: float) -> None:
    """Write a run's end (status, closure, outputs, fingerprint); the caller holds the write transaction."""
    if close.closure:
        conn.executemany(
            "INSERT OR IGNORE INTO file (path, kind, size, sha512) VALUES (?, ?, ?, ?)",
            [(r.path, r.kind, r.size, r.sha512) for r in close.closure],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO closure_entry (run_id, file_id, role) "
            "SELECT ?, id, ? FROM file WHERE path = ? AND sha512 = ?",
            [(run_id, r.role, r.path, r.sha512) for r in close.closure],
        )
    if close.outputs:
        conn.executemany(
            "INSERT OR REPLACE INTO output (run_id, name, value) VALUES (?, ?, ?)",
            [(run_id, name, canonical_json(value)) for name, value in close.outputs.items()],
        )
    check_runs(conn, [run_id], close.status)
    conn.execute(
        "UPDATE run SET status = ?, exit_code = ?, error = ?, fingerprint = ?, environment = ?, "
        "ended_at = ?, last_used_at = ?, params_used = ?, used_key = COALESCE(?, used_key), "
        "result_key = ?, fingerprint_version = ? WHERE id = ?",
        (close.status, close.exit_code, close.error, close.fingerprint, canonical_json(close.environment or {}),
         now, now, None if close.params_used is None else canonical_json(close.params_used), close.used_key,
         close.result_key, FINGERPRINT_VERSION if close.used_key else None, run_id),
    )
    if close.closure_info:
        conn.execute(
            "UPDATE run SET closure_info = ? WHERE id = ?", (canonical_json(close.closure_info), run_id)
        )
    if close.upstream is not None:
        conn.execute("UPDATE run SET upstream = ? WHERE id = ?", (canonical_json(close.upstream), run_id))


def create_run(
    store: Store,
    *,
    run_id: str,
    experiment_id: int,
    job: str,
    kind: str,
    config_hash: str,
    params: Mapping[str, Any],
    config: Mapping[str, Any],
    upstream: Mapping[str, str],
    reason: str,
    run_dir: Path,
    status: str = "queued",
) -> None:
    """Insert a run that is about to be launched (queued until its first attempt starts)."""
    run = NewRun(run_id, experiment_id, job, kind, config_hash, params, config, upstream, reason, str(run_dir))
    with store.write():
        insert_run_rows(store.db.connection(), run, status=status, now=time.time())


def start_attempt(
    store: Store,
    run_id: str,
    number: int,
    *,
    pid: int,
    pid_create_time: float | None,
    params: Mapping[str, Any],
    gpus: Iterable[str] = (),
) -> None:
    """Record that attempt `number` of a run has been launched as process `pid`."""
    now = time.time()
    with store.write():
        conn = store.db.connection()
        check_runs(conn, [run_id], "running")
        conn.execute(
            "INSERT INTO attempt (run_id, number, status, pid, pid_create_time, host, started_at, gpus, params) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
            (run_id, number, pid, pid_create_time, socket.gethostname(), now, json.dumps(list(gpus)),
             canonical_json(params)),
        )
        conn.execute(
            "UPDATE run SET status = 'running', started_at = COALESCE(started_at, ?) WHERE id = ?", (now, run_id)
        )


def finish_attempt(
    store: Store,
    run_id: str,
    number: int,
    *,
    status: str,
    exit_code: int | None,
    signal: int | None,
    cause: str | None,
) -> None:
    """Close an attempt with how its process ended."""
    with store.write():
        check_attempt(store.db.connection(), run_id, number, status)
        store.db.connection().execute(
            "UPDATE attempt SET status = ?, ended_at = ?, exit_code = ?, signal = ?, cause = ? "
            "WHERE run_id = ? AND number = ?",
            (status, time.time(), exit_code, signal, cause, run_id, number),
        )


def finish_run(
    store: Store,
    run_id: str,
    *,
    status: str,
    exit_code: int | None,
    error: str | None = None,
    fingerprint: str | None = None,
    closure: Iterable[ClosureRow] = (),
    environment: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
) -> None:
    """Close a run: status, closure with digests, environment, outputs and fingerprint, at once."""
    close = RunClose(status, exit_code, error, fingerprint, tuple(closure), environment, outputs)
    with store.write():
        close_run_rows(store.db.connection(), run_id, close, time.time())
    write_manifests(store, [run_id])


def add_lineage(store: Store, child_id: str, parents: Mapping[str, str]) -> None:
    """Record that `child_id` used the results of each parent run (name -> parent run id)."""
    if not parents:
        return
    with store.write():
        store.db.cursor().executemany(
            "INSERT OR IGNORE INTO lineage (parent_id, child_id, name) VALUES (?, ?, ?)",
            [(parent, child_id, name) for name, parent in parents.items()],
        )


def record_hits(store: Store, run_ids: Iterable[str]) -> None:
    """Count a cache hit on each run (a hit is a use, for gc's "older than")."""
    ids = list(run_ids)
    if not ids:
        return
    now = time.time()
    with store.write():
        store.db.cursor().executemany(
            "UPDATE run SET hits = hits + 1, last_used_at = ? WHERE id = ?", [(now, i) for i in ids]
        )


def mark_run(store: Store, run_id: str, status: str, error: str | None = None) -> None:
    """Set a run's final status without a process result (skipped, cancelled before start)."""
    with store.write():
        check_runs(store.db.connection(), [run_id], status)
        store.db.connection().execute(
            "UPDATE run SET status = ?, error = ?, ended_at = ? WHERE id = ?", (status, error, time.time(), run_id)
        )


def save_stat_cache(store: Store, rows: Iterable[tuple[str, int, int, int, int, int, str, int]]) -> None:
    """Remember (path, dev, ino, size, mtime_ns, ctime_ns, sha512, hashed_at_ns) of hashed files."""
    if store.read_only:
        return  # a cache only: a store we may not write just keeps none
    batch = list(rows)
    if not batch:
        return
    with store.write():
        store.db.cursor().executemany(
            "INSERT OR REPLACE INTO stat_cache (path, dev, ino, size, mtime_ns, ctime_ns, sha512, hashed_at_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
