"""Read-only extras of one run for the dashboard's run screen: artifacts and peak memory.

The rest of a run's detail comes from `mayuri.inspect_runs.run_detail`; this
module adds what later schemas record, and answers "nothing" on a store
whose schema predates it. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from mayuri.store.db import Store
from mayuri.store.gc_queries import table_exists


@dataclass(frozen=True)
class ArtifactRow:
    name: str
    kind: str
    size: int
    files: int
    created_at: float


def artifacts_of(store: Store, run_id: str) -> list[ArtifactRow]:
    """A run's artifacts with their size and number of files (none before schema 0003)."""
    if not table_exists(store, "artifact"):
        return []
    rows = store.db.execute_sql(
        "SELECT a.name, a.kind, a.size, (SELECT count(*) FROM artifact_file f WHERE f.run_id = a.run_id "
        "AND f.name = a.name), a.created_at FROM artifact a WHERE a.run_id = ? ORDER BY a.created_at",
        (run_id,),
    ).fetchall()
    return [ArtifactRow(*row) for row in rows]


def peaks_of(store: Store, run_id: str) -> tuple[int | None, int | None]:
    """(peak RSS, peak GPU memory) in bytes of a run, when the scheduler recorded them."""
    columns = {row[1] for row in store.db.execute_sql("PRAGMA table_info(run)").fetchall()}
    if "peak_rss" not in columns:
        return None, None
    row = store.db.execute_sql("SELECT peak_rss, peak_gpu_memory FROM run WHERE id = ?", (run_id,)).fetchone()
    return (row[0], row[1]) if row else (None, None)
