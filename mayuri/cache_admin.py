"""Cache management: `mayuri cache ls`, `mayuri cache rm JOB|RUN`, `mayuri pin` and `mayuri unpin`.

`cache rm` is gc with an explicit list of runs instead of a policy: the same
plan, the same safety rules (active and pinned runs and what kept runs need
are never removed), the same sweep under the gc lease. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mayuri.errors import MayuriError, RunNotFound
from mayuri.gc import GcOutcome, GcPlan, Policy, collect_garbage
from mayuri.gc.safe_fs import real_root, run_folder, tree_size
from mayuri.store.db import Store
from mayuri.store.gc_queries import COLLECTED, artifact_bytes, cached_runs, job_exists
from mayuri.store.gc_records import set_pinned
from mayuri.store.queries import RunRow, get_run


@dataclass(frozen=True)
class CacheEntry:
    """The cached results of one job: how many, their bytes, hits and last use."""

    experiment: str
    job: str
    entries: int
    pinned: int
    bytes: int
    hits: int
    last_use: float

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "job": self.job,
            "entries": self.entries,
            "pinned": self.pinned,
            "bytes": self.bytes,
            "hits": self.hits,
            "last_use": self.last_use,
        }


def list_cache(store: Store, experiment: str | None = None) -> list[CacheEntry]:
    """Cached results per experiment and job; bytes are run folders plus artifacts."""
    root = real_root(store.root)
    artifacts = artifact_bytes(store)
    groups: dict[tuple[str, str], list[Any]] = {}
    for run in cached_runs(store, experiment):
        folder = run_folder(root, run.id)
        size = (tree_size(folder).bytes if folder is not None else 0) + artifacts.get(run.id, 0)
        group = groups.setdefault((run.experiment, run.job), [0, 0, 0, 0, 0.0])
        group[0] += 1
        group[1] += int(run.pinned)
        group[2] += size
        group[3] += run.hits
        group[4] = max(group[4], run.last_use)
    return [CacheEntry(exp, job, *values) for (exp, job), values in sorted(groups.items())]


class AmbiguousTarget(MayuriError):
    """`cache rm X` where X is both a job name and a run id prefix."""

    title = "ambiguous"


def cache_targets(store: Store, target: str, experiment: str | None = None) -> set[str]:
    """The cached runs that `cache rm TARGET` means: every cached run of job TARGET, or run TARGET."""
    is_job = job_exists(store, target, experiment)
    try:
        run: RunRow | None = get_run(store, target)
    except RunNotFound:
        run = None
    if is_job and run is not None:
        raise AmbiguousTarget(
            f"'{target}' is both a job and the start of run id {run.id[:12]}.",
            hint="Give more of the run id, or --experiment with the job.",
        )
    if is_job:
        return {r.id for r in cached_runs(store, experiment, target)}
    if run is None:
        raise RunNotFound(
            f"'{target}' is neither a job nor a run.",
            hint="See `mayuri cache ls` for jobs and `mayuri runs` for run ids.",
        )
    if run.status == COLLECTED:
        raise RunNotFound(
            f"run {run.short_id} was already collected.", hint="Nothing left to remove."
        )
    return {run.id}


def remove_cached(
    store: Store,
    target: str,
    experiment: str | None,
    policy: Policy,
    approve: Callable[[GcPlan], bool],
) -> GcOutcome:
    """`cache rm`: collect the cached runs of a job, or one run, after `approve` sees the plan."""
    return collect_garbage(
        store, policy, approve, explicit=cache_targets(store, target, experiment)
    )


def pin(store: Store, ref: str, pinned: bool = True) -> RunRow:
    """Pin (or unpin) a run so that gc never collects it; returns the run."""
    run = get_run(store, ref)
    if not set_pinned(store, run.id, pinned):
        raise RunNotFound(
            f"run {run.short_id} was already collected; only its record is left.",
            hint="Run the job again to get a result you can pin.",
        )
    return get_run(store, run.id)
