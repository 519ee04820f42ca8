"""The cache check: is there a succeeded run that did exactly this work, and if not, why not.

For a job instance, earlier succeeded runs with the same config and the same
upstream fingerprints are candidates; each distinct recorded closure is
re-hashed now (a `stat` per unchanged file, through the stat cache) and the
resulting fingerprint compared with the one recorded. A miss is explained
against the nearest earlier run of the same job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mayuri.environment import current_key_parts, key_parts
from mayuri.experiment.expand import JobInstance
from mayuri.filestate import current_digests
from mayuri.fingerprint import (
    closure_changes,
    config_changes,
    env_changes,
    fingerprint,
    summarize,
)
from mayuri.hashing import canonical_json
from mayuri.store.db import Store
from mayuri.store.queries import RunRow, cache_candidates, closures, latest_runs
from mayuri.units import format_duration


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
) -> CacheDecision:
    """Decide whether `instance` (whose upstreams have these fingerprints) can be reused."""
    if force:
        return CacheDecision(None, "forced (--force)")
    job = instance.job
    candidates = cache_candidates(store, experiment, job.name, instance.config_hash, upstream_json(upstream))
    too_old = False
    if job.cache is False:
        candidates = []
    elif job.cache is not True:
        cutoff = time.time() - float(job.cache)
        fresh = [c for c in candidates if (c.ended_at or c.created_at) >= cutoff]
        too_old = bool(candidates) and not fresh
        candidates = fresh
    recorded = closures(store, [c.id for c in candidates])
    seen: set[tuple[tuple[str, str, str], ...]] = set()
    first_mismatch: tuple[RunRow, list[str]] | None = None
    for candidate in candidates:
        rows = recorded.get(candidate.id, [])
        signature = tuple(sorted((r.path, r.kind, r.sha512) for r in rows))
        if signature in seen:
            continue
        seen.add(signature)
        now = current_digests(store, root, [(r.path, r.kind) for r in rows])
        changes = closure_changes(rows, now)
        env_now = current_key_parts(key_env, candidate.environment, root) if key_env else {}
        env_then = key_parts(key_env, candidate.environment)
        changes += env_changes(env_then, env_now)
        if not changes:
            current = [r.__class__(r.role, r.path, r.kind, now[(r.path, r.kind)][0], r.size) for r in rows]
            if fingerprint(instance.config_hash, upstream, current, env_now) == candidate.fingerprint:
                return CacheDecision(candidate, f"cached (run {candidate.short_id})")
            changes = ["fingerprint differs (store written by another version?)"]
        if first_mismatch is None:
            first_mismatch = (candidate, changes)
    if job.cache is False:
        return CacheDecision(None, "cache disabled (cache: false)")
    if too_old:
        return CacheDecision(None, f"cached run older than cache max age ({format_duration(float(job.cache))})")
    if first_mismatch is not None:
        return CacheDecision(None, summarize(first_mismatch[1]))
    return CacheDecision(None, _why_new(store, experiment, instance, upstream))


def _why_new(store: Store, experiment: str, instance: JobInstance, upstream: dict[str, list[str]]) -> str:
    recent = latest_runs(store, experiment, instance.job.name, limit=50)
    if not recent:
        return "new"
    best: list[str] | None = None
    best_run: RunRow | None = None
    # The nearest earlier run is the one that differs least (newest on a tie),
    # so that a new sweep point is compared with its neighbour, not the last run.
    for previous in recent:
        changes = config_changes(previous.config, instance.config)
        changes += [
            f"upstream {name} changed"
            for name in sorted(upstream)
            if previous.upstream.get(name) != upstream[name]
        ]
        if best is None or len(changes) < len(best):
            best, best_run = changes, previous
    assert best is not None and best_run is not None
    if not best:
        if best_run.status != "succeeded":
            return f"previous run {best_run.short_id} {best_run.status}"
        return "not cached"
    return summarize(best)
