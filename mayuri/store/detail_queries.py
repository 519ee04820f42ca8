"""Read-only extras of one run for the dashboard's run screen: its peak memory.

The rest of a run's detail comes from `mayuri.inspect_runs.run_detail` and
`mayuri.store.artifact_queries`. Nothing here writes.
"""

from __future__ import annotations

from mayuri.store.db import Store


def peaks_of(store: Store, run_id: str) -> tuple[int | None, int | None]:
    """(peak RSS, peak GPU memory) in bytes of a run, when the scheduler recorded them."""
    row = store.db.execute_sql("SELECT peak_rss, peak_gpu_memory FROM run WHERE id = ?", (run_id,)).fetchone()
    return (row[0], row[1]) if row else (None, None)
