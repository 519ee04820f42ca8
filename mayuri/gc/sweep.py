"""The sweep phase of gc: carry out an approved plan under the gc lease, re-checking every item.

Order matters for safety: a run's row becomes a tombstone (so no cache check
can reuse it) before its folder goes; a blob is re-checked, deleted and
unregistered in one write transaction; the grace period is measured when the
sweep runs, not when the plan was made. Anything that changed since the plan
(a run reused or pinned, a blob referenced again) is skipped and reported.
The bytes reported are those of the files actually removed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.experiment.parsed_cache import remove_stale_entry
from mayuri.gc.lease import Lease
from mayuri.gc.plan import GcPlan, database_bytes
from mayuri.gc.safe_fs import (
    real_root,
    remove_blob_file,
    remove_run_folder,
    remove_temp_file,
    usage,
)
from mayuri.store.db import Store
from mayuri.store.gc_queries import gc_runs, live_scheduler_experiments
from mayuri.store.gc_records import (
    drop_metric_points,
    drop_stale_holds,
    purge_run,
    remove_blobs,
    tombstone_run,
    vacuum,
)

_BATCH = 200


@dataclass
class GcResult:
    """What a sweep freed, per category, and what it left because it changed since the plan."""

    freed: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, category: str, items: int, size: int) -> None:
        counts = self.freed.setdefault(category, [0, 0])
        counts[0] += items
        counts[1] += size

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.freed.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "categories": [{"name": n, "items": i, "bytes": b} for n, (i, b) in self.freed.items()],
            "bytes": self.bytes,
            "skipped": [{"item": item, "reason": why} for item, why in self.skipped],
        }


def sweep(store: Store, plan: GcPlan, lease: Lease) -> GcResult:
    """Free what `plan` lists that is still free to go; `lease` must be held."""
    result = GcResult()
    root = real_root(store.root)
    policy = plan.policy
    in_use: dict[str | None, int] = {}
    for index, run in enumerate(plan.runs):
        if index % 20 == 0:
            lease.check()
            # A `mayuri run` started since the plan may be reusing these results.
            in_use = live_scheduler_experiments(store)
        if run.reusable and (run.experiment in in_use or None in in_use):
            result.skipped.append((f"run {run.id[:8]}", "a `mayuri run` of its experiment started"))
        elif tombstone_run(
            store,
            run.id,
            last_use_seen=run.last_use,
            planned_at=plan.planned_at,
            drop_metrics=policy.metrics,
        ):
            result.add("run folders", 1, remove_run_folder(root, run.id))
        else:
            result.skipped.append((f"run {run.id[:8]}", "used, pinned or needed since the plan"))
    _sweep_leftovers(store, root, plan, result)
    if policy.purge:
        lease.check()
        purged = sum(purge_run(store, rid) for rid in plan.purge)
        result.add("run records (purge)", purged, 0)
        if purged < len(plan.purge):
            result.skipped.append(
                (f"{len(plan.purge) - purged} run records", "still named by a kept run's lineage")
            )
    _sweep_blobs(store, root, plan, lease, result)
    cutoff = time.time() - policy.grace
    for name, _size in plan.temp_files:
        freed = remove_temp_file(root, name, cutoff)
        if freed is not None:
            result.add("temp files", 1, freed)
    for name, _size in plan.parsed_files:
        info = remove_stale_entry(root, name, cutoff)
        if info is not None:
            result.add("parsed experiment files", 1, usage(info))
    drop_stale_holds(store, cutoff)
    if policy.metrics:
        result.add("metric points", drop_metric_points(store, plan.metric_runs), 0)
    if policy.vacuum:
        lease.check()
        before = database_bytes(store)
        vacuum(store)
        result.add("database (vacuum)", 1, max(0, before - database_bytes(store)))
    return result


def _sweep_leftovers(store: Store, root: Path, plan: GcPlan, result: GcResult) -> None:
    if not plan.leftover_folders:
        return
    cutoff = time.time() - plan.policy.grace
    known = {r.id: r for r in gc_runs(store)}
    for name, _size in plan.leftover_folders:
        run = known.get(name)
        if run is not None and not run.collected:
            continue
        if run is None:
            # A scheduler makes a run's folder just before its row: only old folders are leftovers.
            try:
                if os.lstat(root / "runs" / name).st_mtime >= cutoff:
                    continue
            except OSError:
                continue
        result.add("leftover folders", 1, remove_run_folder(root, name))


def _sweep_blobs(store: Store, root: Path, plan: GcPlan, lease: Lease, result: GcResult) -> None:
    digests = [sha for sha, _ in plan.blobs]
    for start in range(0, len(digests), _BATCH):
        lease.check()
        batch = digests[start : start + _BATCH]
        freed: dict[str, int] = {}
        cutoff = time.time() - plan.policy.grace

        def remove(sha: str, cutoff: float = cutoff, freed: dict[str, int] = freed) -> bool:
            space = remove_blob_file(root, sha, cutoff)
            if space is not None:
                freed[sha] = space
            return space is not None

        removed = remove_blobs(store, batch, cutoff, remove)
        result.add("blobs", len(removed), sum(freed[sha] for sha in removed))
        if len(removed) < len(batch):
            result.skipped.append(
                (f"{len(batch) - len(removed)} blobs", "referenced, held or written since the plan")
            )
