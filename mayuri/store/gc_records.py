"""Writes of garbage collection and cache management: tombstones, purges, blob rows, pins, holds, the lease.

Each function is one `store.write()` transaction (BEGIN IMMEDIATE) that first
re-reads what it depends on, so that a decision taken from an older snapshot
(the plan) is never applied to a run or blob that has since been used,
pinned or referenced. Nothing here deletes files except through the callback
that `remove_blobs` is given, which runs inside the transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import peewee

from mayuri.store.db import Store
from mayuri.store.gc_queries import COLLECTED, FINISHED, still_unreferenced
from mayuri.store.hit_log import fold_hits


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds (or asks for) the gc lease."""

    token: str
    host: str
    boot_id: str
    pid: int
    pid_create_time: float | None
    user: str


def _finished_marks() -> str:
    return ",".join("?" * len(FINISHED))


def tombstone_run(
    store: Store, run_id: str, *, last_use_seen: float, planned_at: float, drop_metrics: bool
) -> bool:
    """Turn a finished run into a tombstone; False (and nothing written) if it changed since the plan.

    The run keeps its id, fingerprint, params, outputs, closure (paths and
    hashes), attempts, lineage and metric summary; its status becomes
    'collected' so that the cache never reuses it. Its artifact rows go (the
    blobs they named are swept), and its metric points with `drop_metrics`.
    """
    with store.write():
        # A use still in the hit log counts as much as one in the row.
        fold_hits(store)
        row = store.db.execute_sql(
            f"SELECT 1 FROM run WHERE id = ? AND status IN ({_finished_marks()}) AND pinned = 0 "
            "AND COALESCE(last_used_at, ended_at, created_at) <= ?",
            (run_id, *FINISHED, last_use_seen),
        ).fetchone()
        if row is None:
            return False
        # A child that appeared after the plan may point into this run's folder.
        newer_child = store.db.execute_sql(
            "SELECT 1 FROM lineage JOIN run ON run.id = lineage.child_id WHERE lineage.parent_id = ? "
            f"AND (run.created_at > ? OR run.status NOT IN ({_finished_marks()}, ?)) LIMIT 1",
            (run_id, planned_at, *FINISHED, COLLECTED),
        ).fetchone()
        if newer_child is not None:
            return False
        store.db.execute_sql(
            "UPDATE run SET collected_status = status, status = ?, collected_at = ? WHERE id = ?",
            (COLLECTED, time.time(), run_id),
        )
        store.db.execute_sql("DELETE FROM artifact_file WHERE run_id = ?", (run_id,))
        store.db.execute_sql("DELETE FROM artifact WHERE run_id = ?", (run_id,))
        if drop_metrics:
            store.db.execute_sql("DELETE FROM metric WHERE run_id = ?", (run_id,))
        store.db.execute_sql("DELETE FROM blob_hold WHERE run_id = ?", (run_id,))
    return True


def drop_metric_points(store: Store, run_ids: Iterable[str]) -> int:
    """Delete the metric points (never the summaries) of collected runs; returns how many went."""
    ids = list(run_ids)
    if not ids:
        return 0
    removed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        with store.write():
            cursor = store.db.execute_sql(
                f"DELETE FROM metric WHERE run_id IN ({marks}) AND run_id IN "
                "(SELECT id FROM run WHERE status = ?)",
                (*chunk, COLLECTED),
            )
            removed += cursor.rowcount
    return removed


def purge_run(store: Store, run_id: str) -> bool:
    """Delete a collected run's record entirely; False if a remaining run's lineage still names it."""
    with store.write():
        row = store.db.execute_sql("SELECT status FROM run WHERE id = ?", (run_id,)).fetchone()
        if row is None or row[0] != COLLECTED:
            return False
        if store.db.execute_sql(
            "SELECT 1 FROM lineage WHERE parent_id = ? LIMIT 1", (run_id,)
        ).fetchone():
            return False
        store.db.execute_sql("DELETE FROM blob_hold WHERE run_id = ?", (run_id,))
        try:
            store.db.execute_sql("DELETE FROM run WHERE id = ?", (run_id,))
        except peewee.IntegrityError:
            # A table of a later migration refers to the run without cascading: keep the tombstone.
            return False
    return True


def remove_blobs(
    store: Store, digests: list[str], fresh_after: float, remove_file: Callable[[str], bool]
) -> list[str]:
    """Unregister and delete the blobs of `digests` that are still unreferenced, unheld and old.

    The check, the file removal (`remove_file(sha512)`, True when the file is
    gone) and the row deletion happen in one write transaction, so no writer
    can add a reference or a hold between them. Returns the digests removed.
    """
    if not digests:
        return []
    with store.write():
        removable = still_unreferenced(store, digests, fresh_after)
        removed = [sha for sha in digests if sha in removable and remove_file(sha)]
        if removed:
            store.db.cursor().executemany(
                "DELETE FROM blob WHERE sha512 = ?", [(sha,) for sha in removed]
            )
    return removed


def drop_stale_holds(store: Store, fresh_after: float) -> None:
    """Forget holds older than the grace period whose run is finished or unknown."""
    with store.write():
        store.db.execute_sql(
            "DELETE FROM blob_hold WHERE created_at < ? AND (run_id IS NULL OR run_id NOT IN "
            f"(SELECT id FROM run WHERE status NOT IN ({_finished_marks()}, ?)))",
            (fresh_after, *FINISHED, COLLECTED),
        )


def hold_blobs(store: Store, digests: Iterable[str], run_id: str | None = None) -> None:
    """Record pending references: gc keeps these blobs while `run_id` is active (or for the grace period).

    A writer calls this before it writes a blob that it will reference later,
    and `release_blobs` once the real reference is recorded.
    """
    now = time.time()
    with store.write():
        store.db.cursor().executemany(
            "INSERT INTO blob_hold (sha512, run_id, created_at) VALUES (?, ?, ?)",
            [(sha, run_id, now) for sha in digests],
        )


def release_blobs(store: Store, digests: Iterable[str], run_id: str | None = None) -> None:
    """Drop the holds that `hold_blobs` made."""
    with store.write():
        store.db.cursor().executemany(
            "DELETE FROM blob_hold WHERE sha512 = ? AND run_id IS ?",
            [(sha, run_id) for sha in digests],
        )


def set_pinned(store: Store, run_id: str, pinned: bool) -> bool:
    """Pin or unpin a run that is not collected; False if it is a tombstone (or gone)."""
    with store.write():
        cursor = store.db.execute_sql(
            "UPDATE run SET pinned = ? WHERE id = ? AND status != ?",
            (int(pinned), run_id, COLLECTED),
        )
        return cursor.rowcount == 1


def take_gc_lease(store: Store, me: LeaseHolder, is_stale: Callable[[tuple], bool]) -> tuple | None:
    """Take the gc lease unless someone alive holds it; returns that holder's row, or None when ours."""
    now = time.time()
    with store.write():
        row = store.db.execute_sql(
            "SELECT token, host, boot_id, pid, pid_create_time, user, acquired_at, heartbeat_at FROM gc_lease"
        ).fetchone()
        if row is not None and row[0] != me.token and not is_stale(tuple(row)):
            return tuple(row)
        store.db.execute_sql(
            "INSERT OR REPLACE INTO gc_lease (id, token, host, boot_id, pid, pid_create_time, user, "
            "acquired_at, heartbeat_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
            (me.token, me.host, me.boot_id, me.pid, me.pid_create_time, me.user, now, now),
        )
    return None


def renew_gc_lease(store: Store, token: str) -> bool:
    """Refresh our lease's heartbeat; False if it is no longer ours (another gc reclaimed it)."""
    with store.write():
        cursor = store.db.execute_sql(
            "UPDATE gc_lease SET heartbeat_at = ? WHERE token = ?", (time.time(), token)
        )
        return cursor.rowcount == 1


def drop_gc_lease(store: Store, token: str) -> None:
    """Give the gc lease back (only if it is still ours)."""
    with store.write():
        store.db.execute_sql("DELETE FROM gc_lease WHERE token = ?", (token,))


def vacuum(store: Store) -> None:
    """Rebuild the database file to give its free pages back to the filesystem.

    VACUUM cannot run inside a transaction, so it is the one write here that
    is not in `store.write()`; SQLite takes the write lock for it by itself.
    The WAL is then checkpointed and truncated so the space really goes.
    """
    store.db.execute_sql("VACUUM")
    store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
