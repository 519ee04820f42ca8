"""Read-only queries that garbage collection and cache management need.

The mark phase of gc reads everything it decides on through these functions:
runs with their last use, what references which blob, holds, lineage and the
text of params and outputs (where paths into other run folders hide). None of
them writes; writes are in `gc_records.py`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from mayuri.store.db import Store
from mayuri.store.hit_log import pending_hits, with_pending

# Statuses after which nothing writes to a run any more. Anything else
# (queued, running, or a state another part of Mayuri adds later) counts as
# active, and gc never touches an active run.
FINISHED = ("succeeded", "failed", "cancelled", "orphaned", "lost", "skipped")
COLLECTED = "collected"
_RUN_REF = re.compile(r"runs[/\\]+([A-Za-z0-9_-]{6,64})")


@dataclass(frozen=True)
class GcRun:
    """What gc needs to know of one run."""

    id: str
    experiment: str
    job: str
    status: str
    pinned: bool
    created_at: float
    ended_at: float | None
    last_used_at: float | None
    collected_status: str | None
    reusable: bool = False

    @property
    def last_use(self) -> float:
        """When the run was last used: its last cache hit, else when it ended or was created."""
        return self.last_used_at or self.ended_at or self.created_at

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def collected(self) -> bool:
        return self.status == COLLECTED


def gc_runs(store: Store) -> list[GcRun]:
    """Every run, oldest first; `reusable` when the cache could pick it (succeeded, fingerprinted)."""
    cursor = store.db.execute_sql(
        "SELECT run.id, experiment.name, run.job, run.status, run.pinned, run.created_at, run.ended_at, "
        "run.last_used_at, run.collected_status, run.status = 'succeeded' AND run.fingerprint IS NOT NULL "
        "FROM run JOIN experiment ON experiment.id = run.experiment_id ORDER BY run.created_at"
    )
    pending = pending_hits(store.root)
    return [
        GcRun(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], with_pending(r[0], 0, r[7], pending)[1], r[8],
              bool(r[9]))
        for r in cursor
    ]


def live_scheduler_experiments(store: Store) -> dict[str | None, int]:
    """Experiment -> pid of a live `mayuri run` running it (None: a run of an unknown experiment)."""
    # Imported here: the scheduler's liveness rule is the one authority on who is alive.
    from mayuri.liveness import scheduler_alive
    from mayuri.store.scheduler_queries import running_schedulers

    return {row.experiment: row.pid for row in running_schedulers(store) if scheduler_alive(row)}


def lineage_parents(store: Store) -> dict[str, set[str]]:
    """child run id -> its parent run ids."""
    parents: dict[str, set[str]] = defaultdict(set)
    for parent, child in store.db.execute_sql("SELECT parent_id, child_id FROM lineage"):
        parents[child].add(parent)
    return parents


def path_references(store: Store, run_ids: Iterable[str]) -> dict[str, set[str]]:
    """run id -> ids of the run folders that its params, resolved params or outputs name by path.

    Paths are found as text (`.../runs/<id>/...`, absolute or relative), so
    a value nested anywhere in the JSON counts; a false match only keeps more.
    """
    found: dict[str, set[str]] = defaultdict(set)
    ids = list(run_ids)
    sources = (
        "SELECT id, params || config FROM run WHERE id IN ({marks})",
        "SELECT run_id, params FROM attempt WHERE run_id IN ({marks})",
        "SELECT run_id, value FROM output WHERE run_id IN ({marks})",
    )
    for sql in sources:
        for run_id, text in store.select_in(sql, ids):
            for match in _RUN_REF.finditer(text or ""):
                if match.group(1) != run_id:
                    found[run_id].add(match.group(1))
    return found


def blob_references(store: Store) -> dict[str, set[str]]:
    """sha512 -> runs that reference the blob: closure files (code, kept text) of runs not collected,
    and artifact files."""
    refs: dict[str, set[str]] = defaultdict(set)
    cursor = store.db.execute_sql(
        "SELECT DISTINCT file.sha512, closure_entry.run_id FROM closure_entry "
        "JOIN file ON file.id = closure_entry.file_id JOIN run ON run.id = closure_entry.run_id "
        "WHERE file.kind = 'file' AND run.status != ?",
        (COLLECTED,),
    )
    for sha, run_id in cursor:
        refs[sha].add(run_id)
    for sha, run_id in store.db.execute_sql("SELECT DISTINCT sha512, run_id FROM artifact_file"):
        refs[sha].add(run_id)
    return refs


def held_blobs(store: Store, fresh_after: float) -> set[str]:
    """Blobs with a pending reference: held by an active run, or held less than the grace period ago."""
    marks = ",".join("?" * len(FINISHED))
    cursor = store.db.execute_sql(
        "SELECT DISTINCT blob_hold.sha512 FROM blob_hold LEFT JOIN run ON run.id = blob_hold.run_id "
        f"WHERE blob_hold.created_at >= ? OR (run.id IS NOT NULL AND run.status NOT IN ({marks}, ?))",
        (fresh_after, *FINISHED, COLLECTED),
    )
    return {row[0] for row in cursor}


def blob_rows(store: Store) -> dict[str, tuple[int, float]]:
    """sha512 -> (size, when it was last registered: created or touched by a deduplicated write)."""
    cursor = store.db.execute_sql(
        "SELECT sha512, size, MAX(created_at, COALESCE(touched_at, 0)) FROM blob"
    )
    return {sha: (size, when) for sha, size, when in cursor}


def still_unreferenced(store: Store, digests: list[str], fresh_after: float) -> set[str]:
    """Of `digests`, those with no reference, no live hold and no registration since `fresh_after`.

    Meant to be called inside the sweep's write transaction, so that the
    answer cannot change before the blobs are removed.
    """
    marks = ",".join("?" * len(digests))
    busy = set(blob_references_of(store, digests))
    busy |= held_blobs(store, fresh_after) & set(digests)
    cursor = store.db.execute_sql(
        f"SELECT sha512 FROM blob WHERE sha512 IN ({marks}) AND MAX(created_at, COALESCE(touched_at, 0)) >= ?",
        (*digests, fresh_after),
    )
    busy |= {row[0] for row in cursor}
    return set(digests) - busy


def blob_references_of(store: Store, digests: list[str]) -> set[str]:
    """Of `digests`, those that some run not collected (or some artifact) references now."""
    marks = ",".join("?" * len(digests))
    cursor = store.db.execute_sql(
        "SELECT DISTINCT file.sha512 FROM file JOIN closure_entry ON closure_entry.file_id = file.id "
        f"JOIN run ON run.id = closure_entry.run_id WHERE file.sha512 IN ({marks}) "
        "AND file.kind = 'file' AND run.status != ?",
        (*digests, COLLECTED),
    )
    found = {row[0] for row in cursor}
    cursor = store.db.execute_sql(
        f"SELECT DISTINCT sha512 FROM artifact_file WHERE sha512 IN ({marks})", tuple(digests)
    )
    found |= {row[0] for row in cursor}
    return found


def metric_point_count(store: Store, run_ids: list[str]) -> int:
    """How many metric points the runs have."""
    return sum(int(row[0]) for row in store.select_in("SELECT COUNT(*) FROM metric WHERE run_id IN ({marks})", run_ids))


def free_pages_bytes(store: Store) -> int:
    """Bytes VACUUM would give back: the database's free pages."""
    pages = store.db.execute_sql("PRAGMA freelist_count").fetchone()[0]
    size = store.db.execute_sql("PRAGMA page_size").fetchone()[0]
    return int(pages) * int(size)


@dataclass(frozen=True)
class CachedRun:
    """A reusable result: a succeeded run with a fingerprint, not collected."""

    id: str
    experiment: str
    job: str
    hits: int
    last_use: float
    pinned: bool


def cached_runs(
    store: Store, experiment: str | None = None, job: str | None = None
) -> list[CachedRun]:
    """Reusable runs, optionally of one experiment and/or job, oldest first."""
    clauses, args = ["run.status = 'succeeded'", "run.fingerprint IS NOT NULL"], []
    for column, value in (("experiment.name", experiment), ("run.job", job)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    cursor = store.db.execute_sql(
        "SELECT run.id, experiment.name, run.job, run.hits, COALESCE(run.last_used_at, run.ended_at, "
        "run.created_at), run.pinned FROM run JOIN experiment ON experiment.id = run.experiment_id "
        f"WHERE {' AND '.join(clauses)} ORDER BY run.created_at",
        tuple(args),
    )
    pending = pending_hits(store.root)
    found = []
    for run_id, experiment_name, job_name, hits, last_use, pinned in cursor:
        hits, last_use = with_pending(run_id, int(hits), last_use, pending)
        found.append(CachedRun(run_id, experiment_name, job_name, hits, last_use or 0.0, bool(pinned)))
    return found


def artifact_bytes(store: Store) -> dict[str, int]:
    """run id -> bytes of its artifacts."""
    return {
        rid: int(size)
        for rid, size in store.db.execute_sql(
            "SELECT run_id, SUM(size) FROM artifact GROUP BY run_id"
        )
    }


def job_exists(store: Store, job: str, experiment: str | None = None) -> bool:
    """Whether some run belongs to job `job` (of `experiment` when given)."""
    sql = "SELECT 1 FROM run JOIN experiment ON experiment.id = run.experiment_id WHERE run.job = ?"
    args: tuple[str, ...] = (job,)
    if experiment is not None:
        sql += " AND experiment.name = ?"
        args += (experiment,)
    return store.db.execute_sql(sql + " LIMIT 1", args).fetchone() is not None


def database_created_at(store: Store) -> float | None:
    """When the store's database was made (`store_meta`, migration 0011), or None if unknown."""
    row = store.db.execute_sql("SELECT value FROM store_meta WHERE key = 'created_at'").fetchone()
    return float(row[0]) if row else None
