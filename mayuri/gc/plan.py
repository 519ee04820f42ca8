"""The mark phase of gc: read the store and its folders, and say what a sweep would free.

Building a plan deletes nothing and takes no lease, so `--dry-run` is safe at
any time. A blob is garbage when no run that stays (code files of its
closure) and no artifact references it, no active run holds it, and it was
neither written nor registered again within the grace period. The sweep
re-checks every item under the gc lease before it deletes anything.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.experiment.parsed_cache import stale_entries
from mayuri.gc.policy import Policy
from mayuri.gc.safe_fs import (
    blob_files,
    real_root,
    run_folder,
    run_folder_names,
    temp_files,
    tree_size,
    usage,
)
from mayuri.gc.select import FAILED_STATES, Sizes, choose_runs
from mayuri.gc.trust import distrust
from mayuri.store.db import DB_NAME, Store
from mayuri.store.gc_queries import (
    GcRun,
    blob_references,
    blob_rows,
    free_pages_bytes,
    gc_runs,
    held_blobs,
    lineage_parents,
    live_scheduler_experiments,
    metric_point_count,
    path_references,
)


@dataclass(frozen=True)
class PlannedRun:
    """A run the sweep will turn into a tombstone (or purge)."""

    id: str
    experiment: str
    job: str
    status: str
    last_use: float
    bytes: int
    reusable: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "experiment": self.experiment,
            "job": self.job,
            "status": self.status,
            "last_use": self.last_use,
            "bytes": self.bytes,
        }


@dataclass
class GcPlan:
    """What a sweep would do, with the bytes of each category."""

    policy: Policy
    planned_at: float
    runs: list[PlannedRun] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    leftover_folders: list[tuple[str, int]] = field(default_factory=list)
    blobs: list[tuple[str, int]] = field(default_factory=list)
    temp_files: list[tuple[str, int]] = field(default_factory=list)
    parsed_files: list[tuple[str, int]] = field(default_factory=list)
    purge: list[str] = field(default_factory=list)
    metric_runs: list[str] = field(default_factory=list)
    metric_points: int = 0
    vacuum_bytes: int = 0
    # Why leftover folders and unreferenced blobs are kept this time (see gc/trust.py), if they are.
    leftovers_withheld: str | None = None

    def categories(self) -> list[tuple[str, int, int]]:
        """(category, items, bytes) in the order the plan table shows them."""
        rows = [
            ("run folders", len(self.runs), sum(r.bytes for r in self.runs)),
            (
                "leftover folders",
                len(self.leftover_folders),
                sum(b for _, b in self.leftover_folders),
            ),
            ("blobs", len(self.blobs), sum(b for _, b in self.blobs)),
            ("temp files", len(self.temp_files), sum(b for _, b in self.temp_files)),
            ("parsed experiment files", len(self.parsed_files), sum(b for _, b in self.parsed_files)),
        ]
        if self.policy.purge:
            rows.append(("run records (purge)", len(self.purge), 0))
        if self.policy.metrics:
            rows.append(("metric points", self.metric_points, 0))
        if self.policy.vacuum:
            rows.append(("database (vacuum)", 1, self.vacuum_bytes))
        return rows

    @property
    def bytes(self) -> int:
        return sum(b for _, _, b in self.categories())

    @property
    def empty(self) -> bool:
        """Nothing to free (a vacuum with no free pages counts as nothing)."""
        return not any(
            items for name, items, b in self.categories() if name != "database (vacuum)"
        ) and (not self.policy.vacuum or self.vacuum_bytes == 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy.to_json(),
            "planned_at": self.planned_at,
            "categories": [{"name": n, "items": i, "bytes": b} for n, i, b in self.categories()],
            "bytes": self.bytes,
            "runs": [r.to_json() for r in self.runs],
            "kept": self.kept,
            "blobs": [{"sha512": s, "bytes": b} for s, b in self.blobs],
            "temp_files": [{"name": n, "bytes": b} for n, b in self.temp_files],
            "parsed_files": [{"name": n, "bytes": b} for n, b in self.parsed_files],
            "leftover_folders": [{"name": n, "bytes": b} for n, b in self.leftover_folders],
            "purge": self.purge,
            "metric_points": self.metric_points,
            "leftovers_withheld": self.leftovers_withheld,
        }


def database_bytes(store: Store) -> int:
    """Bytes of the database file with its WAL and shared-memory files."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):  # no WAL or shared-memory file right now
            total += os.lstat(Path(str(store.root / DB_NAME) + suffix)).st_size
    return total


def _folder_bytes(root: Path, run_ids: list[str]) -> dict[str, int]:
    sizes = {}
    for rid in run_ids:
        folder = run_folder(root, rid)
        sizes[rid] = tree_size(folder).bytes if folder is not None else 0
    return sizes


def plan_gc(store: Store, policy: Policy, explicit: set[str] | None = None) -> GcPlan:
    """Everything a sweep under `policy` would free now (`explicit`: collect exactly these runs instead)."""
    now = time.time()
    fresh_after = now - policy.grace
    root = real_root(store.root)
    runs = gc_runs(store)
    by_id = {r.id: r for r in runs}
    live = [r for r in runs if not r.collected]
    refs = blob_references(store)
    held = held_blobs(store, fresh_after)
    registered = blob_rows(store)
    on_disk = {sha: (size, mtime) for sha, size, mtime in blob_files(root)}
    run_blobs: dict[str, set[str]] = defaultdict(set)
    for sha, owners in refs.items():
        for rid in owners:
            run_blobs[rid].add(sha)

    def young(sha: str) -> bool:
        return max(on_disk[sha][1], registered.get(sha, (0, 0.0))[1]) >= fresh_after

    withheld = distrust(store, root, by_id) if explicit is None else None
    # `cache rm` frees the runs it names and what only they used, not the store's other garbage.
    garbage = (
        []
        if explicit is not None or withheld
        else [sha for sha in on_disk if not refs.get(sha) and sha not in held and not young(sha)]
    )
    all_temps = list(temp_files(root))
    temps = [(n, s) for n, s, mtime in all_temps if mtime < fresh_after and explicit is None]
    folders: dict[str, int] = {}
    total = 0
    if policy.max_size is not None:
        # The store's whole size matters only when it must fit under a limit.
        folders = _folder_bytes(root, [r.id for r in live if r.finished])
        total = (
            sum(folders.values())
            + sum(_folder_bytes(root, [r.id for r in live if not r.finished]).values())
            + sum(s for s, _ in on_disk.values())
            + sum(s for _, s, _ in all_temps)
            + database_bytes(store)
        )
    sizes = Sizes(
        folders=folders,
        blob_size={sha: s for sha, (s, _) in on_disk.items()},
        run_blobs=run_blobs,
        blob_refs=refs,
        total=total,
        already_free=sum(on_disk[sha][0] for sha in garbage) + sum(s for _, s in temps),
    )
    choice = choose_runs(
        runs,
        policy,
        now,
        path_references(store, [r.id for r in live]),
        lineage_parents(store),
        sizes,
        explicit,
        live_scheduler_experiments(store),
    )
    chosen = set(choice.collect)
    if not folders:
        folders = _folder_bytes(root, choice.collect)
    plan = GcPlan(policy=policy, planned_at=now, kept=choice.kept, temp_files=temps)
    if explicit is None:
        plan.parsed_files = [(name, usage(info)) for name, info in stale_entries(root, fresh_after)]
    plan.runs = [
        PlannedRun(
            rid,
            by_id[rid].experiment,
            by_id[rid].job,
            by_id[rid].status,
            by_id[rid].last_use,
            folders.get(rid, 0),
            by_id[rid].reusable,
        )
        for rid in choice.collect
    ]
    freed_by_runs = [
        sha
        for sha, owners in refs.items()
        if sha in on_disk and owners <= chosen and sha not in held and not young(sha)
    ]
    plan.blobs = [(sha, on_disk[sha][0]) for sha in sorted(set(garbage) | set(freed_by_runs))]
    plan.leftover_folders = _leftovers(root, by_id, fresh_after) if explicit is None and not withheld else []
    plan.leftovers_withheld = withheld
    tombstones = [r for r in runs if r.collected and _matches(r, policy, now)]
    if policy.purge:
        plan.purge = [
            r.id
            for r in sorted(
                [*tombstones, *(by_id[i] for i in chosen)], key=lambda r: r.created_at, reverse=True
            )
        ]
    if policy.metrics:
        plan.metric_runs = [r.id for r in tombstones] + choice.collect
        plan.metric_points = metric_point_count(store, plan.metric_runs)
    if policy.vacuum:
        plan.vacuum_bytes = free_pages_bytes(store)
    return plan


def _matches(run: GcRun, policy: Policy, now: float) -> bool:
    """Whether a tombstone falls under the policy (for --purge and --metrics)."""
    if policy.experiment is not None and run.experiment != policy.experiment:
        return False
    rules = policy.rules_for(run.experiment)
    if rules.failed and run.collected_status not in FAILED_STATES:
        return False
    return rules.older_than is None or now - run.last_use > rules.older_than


def _leftovers(root: Path, by_id: dict[str, GcRun], fresh_after: float) -> list[tuple[str, int]]:
    """Folders of collected runs that a crashed sweep left, and folders no run owns (past the grace)."""
    found = []
    for name, mtime in run_folder_names(root):
        run = by_id.get(name)
        if (run is not None and run.collected) or (run is None and mtime < fresh_after):
            folder = run_folder(root, name)
            if folder is not None:
                found.append((name, tree_size(folder).bytes))
    return found
