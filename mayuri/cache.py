"""The cache check: is there a succeeded run that did exactly this work, and if not, why not.

For a job instance, earlier succeeded runs of any job with the same config
but params (command, env, inputs, outputs), the same values of the params
*that run* used, and the same upstream results (by content) are candidates,
those of the same experiment and job first, newest first. A candidate is reused when
every entry of its recorded closure is unchanged now (a `stat` per unchanged
file, through the stat cache; only what the stat cache cannot vouch for is
hashed) and so are the environment parts that `key_env` counts. A run that
counted only the upstream files it read is matched on its upstreams' output
values, then on those files in the current upstreams' folders
(mayuri/upstream_reads.py). Those are all
a fingerprint is made of, so the fingerprint is not recomputed: that would
cost an encoding of the whole closure on every warm start. A miss is explained
against the nearest earlier run of the same job (or, when it has none, of the
same command). This module only decides; it never launches anything.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayuri.environment import current_key_parts, key_parts
from mayuri.experiment.expand import JobInstance
from mayuri.filestate import Digest, current_digests, unchanged_except
from mayuri.fingerprint import closure_changes, config_changes, env_changes, summarize, used_key
from mayuri.hashing import canonical_json
from mayuri.store.db import Store
from mayuri.store.queries import (
    RunRow,
    cache_candidates,
    closures,
    latest_runs,
    runs_of_command,
    used_param_sets,
)
from mayuri.units import format_duration
from mayuri.upstream_reads import UpstreamRuns, reads_changed


@dataclass(frozen=True)
class CacheDecision:
    """The answer for one instance: a run to reuse, or a reason to run."""

    cached: RunRow | None
    reason: str

    @property
    def hit(self) -> bool:
        return self.cached is not None


def upstream_json(upstream: dict[str, list[str]]) -> str:
    """How upstream fingerprints are stored on a run (and compared by the cache)."""
    return canonical_json(upstream)


def check(
    store: Store,
    root: Path,
    experiment: str,
    instance: JobInstance,
    upstream: dict[str, list[str]],
    key_env: tuple[str, ...] = (),
    force: bool = False,
    used_sets: Sequence[list[str] | None] | None = None,
    current: UpstreamRuns | None = None,
    explain: bool = True,
) -> CacheDecision:
    """Decide whether `instance` (whose upstreams gave these results) can be reused.

    `used_sets` are the sets of params that earlier runs with this config
    (but params) used (`used_param_sets`); asked here when not given.
    `current`, the upstream runs now: an earlier run that counted only the
    upstream files it read matches on their output keys, then on those files.
    `explain=False` leaves a miss unexplained ("new"): finding the nearest
    earlier run reads up to 50 runs, a cost a launch-time re-check (which
    keeps the reason given at plan time) need not pay.
    """
    if force:
        return CacheDecision(None, "forced (--force)")
    job = instance.job
    if used_sets is None:
        used_sets = used_param_sets(store, [instance.base_hash]).get(instance.base_hash, [])
    # `cache: strict` counts every param: only a run matched on all of them will do.
    keys = sorted({used_key(used, instance.params) for used in ([None] if job.strict else used_sets)})
    jsons = [upstream_json(upstream)] + ([upstream_json(current.keys)] if current is not None else [])
    candidates = cache_candidates(store, experiment, job.name, instance.base_hash, keys, jsons) if keys else []
    too_old = False
    if job.cache is False:
        candidates = []
    elif job.cache is not True:
        cutoff = time.time() - float(job.cache)
        fresh = [c for c in candidates if (c.ended_at or c.created_at) >= cutoff]
        too_old = bool(candidates) and not fresh
        candidates = fresh
    # Digests computed for one candidate serve the others: nothing is hashed twice.
    known: dict[tuple[str, str], Digest] = {}
    first_mismatch: tuple[RunRow, list[str]] | None = None
    for candidate in candidates:
        env_now = current_key_parts(key_env, candidate.environment, root) if key_env else {}
        changes = env_changes(key_parts(key_env, candidate.environment), env_now)
        if current is not None and candidate.upstream != upstream:
            changes = reads_changed(store, candidate.upstream_reads_text, current.dirs, current.digests) + changes
        suspects = unchanged_except(store, root, candidate.id)
        if suspects:
            missing = [entry for entry in suspects if entry not in known]
            if missing:
                known.update(current_digests(store, root, missing))
            rows = closures(store, [candidate.id]).get(candidate.id, [])
            changes = closure_changes(rows, {entry: known[entry] for entry in suspects}, candidate.short_id) + changes
        if not changes:
            return CacheDecision(candidate, _cached_reason(candidate, experiment, job.name))
        if first_mismatch is None:
            first_mismatch = (candidate, changes)
    if job.cache is False:
        return CacheDecision(None, "cache disabled (cache: false)")
    if too_old:
        return CacheDecision(None, f"cached run older than cache max age ({format_duration(float(job.cache))})")
    if first_mismatch is not None:
        return CacheDecision(None, summarize(first_mismatch[1]))
    if not explain:
        return CacheDecision(None, "new")
    return CacheDecision(None, _why_new(store, experiment, instance, upstream, current))


def _role(config: dict[str, Any]) -> tuple[str, Any]:
    shard = config.get("shard")
    if isinstance(shard, dict):
        return "shard", shard.get("index")
    return ("reduction" if "reduction" in config else "run"), None


def _peers(recent: list[RunRow], config: dict[str, Any]) -> list[RunRow]:
    """The runs a miss is explained against: a shard against the same shard (else other shards),
    a sharded job's reduction against reductions."""
    role = _role(config)
    same = [r for r in recent if _role(r.config) == role]
    return same or [r for r in recent if _role(r.config)[0] == role[0]]


def _cached_reason(run: RunRow, experiment: str, job: str) -> str:
    """`cached (run ID)`, naming where the run came from when another job or file made it."""
    if run.experiment == experiment and run.job == job:
        return f"cached (run {run.short_id})"
    origin = run.job if run.experiment == experiment else f"{run.experiment}/{run.job}"
    return f"cached (run {run.short_id} of {origin})"


def _why_new(store: Store, experiment: str, instance: JobInstance, upstream: dict[str, list[str]],
             current: UpstreamRuns | None) -> str:
    recent = latest_runs(store, experiment, instance.job.name, limit=50) or \
        runs_of_command(store, instance.base_hash, limit=50)
    recent = _peers(recent, instance.config)
    if not recent:
        return "new"
    best: list[str] | None = None
    best_run: RunRow | None = None
    # The nearest earlier run is the one that differs least (newest on a tie),
    # so that a new sweep point is compared with its neighbour, not the last run.
    for previous in recent:
        changes = config_changes(previous.config, instance.config, previous.params_used)
        changes += [
            f"upstream {name} changed"
            for name in sorted(upstream)
            if previous.upstream.get(name) not in (upstream[name], current.keys.get(name) if current else None)
        ]
        if best is None or len(changes) < len(best):
            best, best_run = changes, previous
    assert best is not None and best_run is not None
    if not best:
        if best_run.status != "succeeded":
            return f"previous run {best_run.short_id} {best_run.status}"
        return "not cached"
    return summarize(best)
