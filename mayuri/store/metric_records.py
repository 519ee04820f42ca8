"""Writing metric points: interned keys, raw points and the per-run summary, in one transaction.

This is the write path of `mayuri.log` (through the job's background writer)
and of the scheduler's system metrics. It never reads points back (that is
`metric_queries`), and it keeps `metric_summary` current in the same
transaction as the points, so listings never scan raw points.

NaN is stored as NULL (SQLite turns a NaN REAL into NULL anyway) and is left
out of min and max; infinities are stored as they are and count in min/max.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from mayuri.errors import StoreError
from mayuri.store.plain_sqlite import select_in

# Set by type checkers only: the metrics writer imports this module, and must not load peewee.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from mayuri.store.db import Store

Point = tuple[str, int, float, float]
"""(key, step, value, logged_at) of one metric point."""

_INSERT = "INSERT INTO metric (run_id, key_id, step, value, logged_at) VALUES (?, ?, ?, ?, ?)"
# Merges a batch's summary into the stored one. In an upsert's SET clause the
# bare column names are the old row's values, so every CASE compares old with new.
_UPSERT_SUMMARY = """
INSERT INTO metric_summary (run_id, key_id, last, last_step, min, min_step, max, max_step, count, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, key_id) DO UPDATE SET
    last = excluded.last,
    last_step = excluded.last_step,
    min_step = CASE WHEN excluded.min < min OR min IS NULL THEN excluded.min_step ELSE min_step END,
    min = CASE WHEN excluded.min < min OR min IS NULL THEN excluded.min ELSE min END,
    max_step = CASE WHEN excluded.max > max OR max IS NULL THEN excluded.max_step ELSE max_step END,
    max = CASE WHEN excluded.max > max OR max IS NULL THEN excluded.max ELSE max END,
    count = count + excluded.count,
    updated_at = excluded.updated_at
"""


def _intern_keys(conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, int]:
    """The id of each metric key name, created when new (inside the caller's write transaction)."""
    wanted = sorted(set(names))
    conn.executemany("INSERT OR IGNORE INTO metric_key (name) VALUES (?)", [(n,) for n in wanted])
    return {name: key_id for key_id, name in select_in(conn.execute, "SELECT id, name FROM metric_key "
                                                       "WHERE name IN ({marks})", wanted)}


def _summarise(points: Sequence[Point]) -> dict[str, list[float | int | None]]:
    """Per key of a batch: [last, last_step, min, min_step, max, max_step, count]."""
    summary: dict[str, list[float | int | None]] = {}
    for key, step, value, _ in points:
        entry = summary.get(key)
        if entry is None:
            finite = not math.isnan(value)
            summary[key] = [value, step, value if finite else None, step if finite else None,
                            value if finite else None, step if finite else None, 1]
            continue
        entry[0] = value
        entry[1] = step
        entry[6] += 1  # type: ignore[operator]
        if math.isnan(value):
            continue
        low = entry[2]
        if low is None or value < low:
            entry[2] = value
            entry[3] = step
        high = entry[4]
        if high is None or value > high:
            entry[4] = value
            entry[5] = step
    return summary


def append_points(store: Store, run_id: str, points: Sequence[Point]) -> None:
    """Append (key, step, value, logged_at) points to a run and update its summaries, atomically."""
    if not points:
        return
    with store.write():
        write_points(store.db.connection(), store.db_path, run_id, points)


def write_points(conn: sqlite3.Connection, db_path: Path, run_id: str, points: Sequence[Point]) -> None:
    """`append_points` on a plain connection, inside the caller's write transaction (the metrics writer's way)."""
    summary = _summarise(points)
    now = time.time()
    # Checked once here, so that a writer may turn off the per-row foreign key check.
    if conn.execute("SELECT 1 FROM run WHERE id = ?", (run_id,)).fetchone() is None:
        raise StoreError(f"no run {run_id} in the store: its metric points were not recorded.", path=db_path)
    ids = _intern_keys(conn, summary)
    conn.executemany(_INSERT, [(run_id, ids[k], s, v, t) for k, s, v, t in points])
    conn.executemany(_UPSERT_SUMMARY, [(run_id, ids[key], *entry, now) for key, entry in summary.items()])
