"""Writes to the store: runs, attempts, closures, outputs, lineage, cache hits.

Every function here writes inside one `store.write()` transaction (BEGIN
IMMEDIATE), so that concurrent `mayuri run` processes never see half a record
and never upgrade a read lock into a write.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peewee import fn

from mayuri.config import current_user
from mayuri.hashing import canonical_json
from mayuri.store.db import Store
from mayuri.store.models import Attempt, Experiment, Run


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
    row = Experiment.get_or_none(Experiment.name == name)
    if row is not None:
        return int(row.id)
    with store.write():
        store.db.execute_sql(
            "INSERT OR IGNORE INTO experiment (name, created_at) VALUES (?, ?)", (name, time.time())
        )
        return int(Experiment.get(Experiment.name == name).id)


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
    with store.write():
        Run.insert(
            id=run_id,
            experiment=experiment_id,
            job=job,
            kind=kind,
            status=status,
            config_hash=config_hash,
            params=canonical_json(params),
            config=canonical_json(config),
            upstream=canonical_json(upstream),
            reason=reason,
            created_at=time.time(),
            user=current_user(),
            host=socket.gethostname(),
            run_dir=str(run_dir),
            scheduler_pid=os.getpid(),
        ).execute()


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
        Attempt.insert(
            run=run_id,
            number=number,
            status="running",
            pid=pid,
            pid_create_time=pid_create_time,
            host=socket.gethostname(),
            started_at=now,
            gpus=json.dumps(list(gpus)),
            params=canonical_json(params),
        ).execute()
        Run.update(status="running", started_at=fn.COALESCE(Run.started_at, now)).where(
            Run.id == run_id
        ).execute()


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
        Attempt.update(
            status=status, ended_at=time.time(), exit_code=exit_code, signal=signal, cause=cause
        ).where((Attempt.run == run_id) & (Attempt.number == number)).execute()


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
    rows = list(closure)
    now = time.time()
    with store.write():
        cursor = store.db.cursor()
        if rows:
            cursor.executemany(
                "INSERT OR IGNORE INTO file (path, kind, size, sha512) VALUES (?, ?, ?, ?)",
                [(r.path, r.kind, r.size, r.sha512) for r in rows],
            )
            cursor.executemany(
                "INSERT OR IGNORE INTO closure_entry (run_id, file_id, role) "
                "SELECT ?, id, ? FROM file WHERE path = ? AND sha512 = ?",
                [(run_id, r.role, r.path, r.sha512) for r in rows],
            )
        if outputs:
            cursor.executemany(
                "INSERT OR REPLACE INTO output (run_id, name, value) VALUES (?, ?, ?)",
                [(run_id, name, canonical_json(value)) for name, value in outputs.items()],
            )
        cursor.execute(
            "UPDATE run SET status = ?, exit_code = ?, error = ?, fingerprint = ?, environment = ?, "
            "ended_at = ?, last_used_at = ? WHERE id = ?",
            (
                status,
                exit_code,
                error,
                fingerprint,
                canonical_json(environment or {}),
                now,
                now,
                run_id,
            ),
        )


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
        Run.update(status=status, error=error, ended_at=time.time()).where(Run.id == run_id).execute()


def save_stat_cache(store: Store, rows: Iterable[tuple[str, int, int, int, int, int, str, int]]) -> None:
    """Remember (path, dev, ino, size, mtime_ns, ctime_ns, sha512, hashed_at_ns) of hashed files."""
    batch = list(rows)
    if not batch:
        return
    with store.write():
        store.db.cursor().executemany(
            "INSERT OR REPLACE INTO stat_cache (path, dev, ino, size, mtime_ns, ctime_ns, sha512, hashed_at_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
