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
(mayuri/upstream_reads.py). Upstreams are keyed by their position in
`depends_on`, not their name (mayuri/experiment/upstream_positions.py);
runs of jobs with several upstreams recorded before that are found by their
names (migration 0018 rewrote the others). Those are all
a fingerprint is made of, so the fingerprint is not recomputed: that would
cost an encoding of the whole closure on every warm start. A miss is explained
against the nearest earlier run of the same job (or, when it has none, of the
same command). This module only decides; it never launches anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayuri.environment import current_key_parts, key_parts
from mayuri.experiment.expand import JobInstance, base_hash
from mayuri.experiment.upstream_positions import (
    UPSTREAM_KEY,
    by_position,
    config_positions,
    name_free,
)
from mayuri.filestate import Digest, current_digests, unchanged_except
from mayuri.fingerprint import (
    Difference,
    closure_changes,
    config_differences,
    env_changes,
    in_words,
    summarize,
    used_key,
)
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
    """How upstream results are stored on a run (and compared by the cache)."""
    return canonical_json(upstream)


class _Keys:
    """What the cache looks an instance up by: the config without params, the params it counts, and its
    upstreams' results and folders, the upstreams named by position (or by name, as older runs were keyed).

    A plain class: a dataclass would cost the start of every `mayuri run` the compiling of its methods.
    """

    __slots__ = ("base_hash", "params", "upstream", "current", "names")

    def __init__(self, base_hash: str, params: dict[str, Any], upstream: dict[str, list[str]],
                 current: UpstreamRuns | None, names: dict[str, str]) -> None:
        self.base_hash, self.params, self.upstream, self.current = base_hash, params, upstream, current
        # The upstream names of the keys of `upstream` (position -> name), for the words.
        self.names = names

    @classmethod
    def of(cls, instance: JobInstance, upstream: dict[str, list[str]], current: UpstreamRuns | None,
           by_name: bool) -> _Keys:
        if by_name:
            return cls(base_hash(instance.config, by_name=True), instance.params, upstream, current, {})
        where = instance.positions
        now = None if current is None else \
            UpstreamRuns(by_position(current.keys, where), by_position(current.dirs, where), current.digests)
        names = {position: name for name, position in where.items()}
        return cls(instance.base_hash, instance.key_params, by_position(upstream, where), now, names)


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
    nearest: NearestRuns | None = None,
) -> CacheDecision:
    """Decide whether `instance` (whose upstreams gave these results, by name) can be reused.

    `used_sets` are the sets of params that earlier runs with this config
    (but params) used (`used_param_sets`); asked here when not given.
    `current`, the upstream runs now: an earlier run that counted only the
    upstream files it read matches on their output keys, then on those files.
    Runs recorded before upstreams were keyed by position are looked up by
    their names when nothing else answers. `explain=False` leaves a miss
    unexplained ("new"): finding the nearest earlier run reads up to 50 runs,
    a cost a launch-time re-check (which keeps the reason given at plan time)
    need not pay. `nearest` keeps the earlier runs read to explain a miss
    for the other instances of the same job decided with the store unchanged
    (the points of a sweep, the shards of a job).
    """
    if force:
        return CacheDecision(None, "forced (--force)")
    job = instance.job
    if job.cache is False:
        return CacheDecision(None, "cache disabled (cache: false)")
    keys = _Keys.of(instance, upstream, current, by_name=False)
    decision, first_mismatch = _lookup(store, root, experiment, instance, keys, key_env, used_sets)
    # Migration 0018 put the runs of jobs with one upstream in place; those with several kept their names.
    if decision is None and len(instance.config.get(UPSTREAM_KEY) or ()) > 1:
        named = _Keys.of(instance, upstream, current, by_name=True)
        decision, older = _lookup(store, root, experiment, instance, named, key_env, None)
        first_mismatch = first_mismatch or older
    if decision is not None:
        return decision
    if first_mismatch is _TOO_OLD:
        return CacheDecision(None, f"cached run older than cache max age ({format_duration(float(job.cache))})")
    if first_mismatch:
        return CacheDecision(None, summarize(first_mismatch))
    if not explain:
        return CacheDecision(None, "new")
    return CacheDecision(None, _why_new(store, experiment, instance, keys, {} if nearest is None else nearest))


# What `_lookup` says when every candidate was older than the job's `cache` max age.
_TOO_OLD = ["too old"]


def _lookup(store: Store, root: Path, experiment: str, instance: JobInstance, keys: _Keys,
            key_env: tuple[str, ...], used_sets: Sequence[list[str] | None] | None
            ) -> tuple[CacheDecision | None, list[str] | None]:
    """(a hit, or None; why the first candidate differs now, or `_TOO_OLD`, or None when there was none)."""
    job = instance.job
    if used_sets is None:
        used_sets = used_param_sets(store, [keys.base_hash]).get(keys.base_hash, [])
    # `cache: strict` counts every param: only a run matched on all of them will do.
    wanted = sorted({used_key(used, keys.params) for used in ([None] if job.strict else used_sets)})
    current = keys.current
    jsons = [upstream_json(keys.upstream)] + ([upstream_json(current.keys)] if current is not None else [])
    candidates = cache_candidates(store, experiment, job.name, keys.base_hash, wanted, jsons) if wanted else []
    if job.cache is not True and candidates:
        cutoff = time.time() - float(job.cache)
        fresh = [c for c in candidates if (c.ended_at or c.created_at) >= cutoff]
        if not fresh:
            return None, _TOO_OLD
        candidates = fresh
    # Digests computed for one candidate serve the others: nothing is hashed twice.
    known: dict[tuple[str, str], Digest] = {}
    first_mismatch: list[str] | None = None
    for candidate in candidates:
        env_now = current_key_parts(key_env, candidate.environment, root) if key_env else {}
        changes = env_changes(key_parts(key_env, candidate.environment), env_now)
        if current is not None and candidate.upstream != keys.upstream:
            changes = reads_changed(store, candidate.upstream_reads_text, current.dirs, current.digests,
                                    keys.names) + changes
        suspects = unchanged_except(store, root, candidate.id)
        if suspects:
            missing = [entry for entry in suspects if entry not in known]
            if missing:
                known.update(current_digests(store, root, missing))
            rows = closures(store, [candidate.id]).get(candidate.id, [])
            changes = closure_changes(rows, {entry: known[entry] for entry in suspects}, candidate.short_id) + changes
        if not changes:
            return CacheDecision(candidate, _cached_reason(candidate, experiment, instance)), None
        if first_mismatch is None:
            first_mismatch = changes
    return None, first_mismatch


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


def _cached_reason(run: RunRow, experiment: str, instance: JobInstance) -> str:
    """`cached (run ID)`, naming where the run came from when another job or file made it, and the
    upstreams it knew by other names (`cached (run ID, upstream prep was data)`)."""
    renamed = [f"upstream {now} was {then}" for now, then in _renamed_upstreams(run.config, instance.config)]
    if run.experiment == experiment and run.job == instance.name:
        return f"cached (run {', '.join([run.short_id, *renamed])})"
    origin = run.job if run.experiment == experiment else f"{run.experiment}/{run.job}"
    return f"cached (run {', '.join([f'{run.short_id} of {origin}', *renamed])})"


def _renamed_upstreams(then: dict[str, Any], now: dict[str, Any]) -> list[tuple[str, str]]:
    """(name now, name then) of the upstreams at the same position that a reused run knew by another name."""
    before, after = then.get(UPSTREAM_KEY), now.get(UPSTREAM_KEY)
    if not isinstance(before, list) or not isinstance(after, list) or before == after:
        return []  # a run found by its upstreams' names (recorded before the list was) knew them by these
    return [(new, old) for new, old in zip(after, before, strict=False) if new != old]


# The earlier runs a miss is compared with, as read from the store and as compared (each with its
# config free of upstream names), for the misses decided while the store is unchanged (one pass of
# the planner): the points of a sweep share them.
NearestRuns = dict[tuple[Any, ...], Any]


def _recent(store: Store, experiment: str, instance: JobInstance,
            nearest: NearestRuns) -> list[tuple[RunRow, dict[str, Any]]]:
    """The earlier runs to explain a miss against, newest first, each with its config free of upstream names."""
    sources: list[tuple[tuple[Any, ...], Callable[[], list[RunRow]]]] = [
        (("job", experiment, instance.job.name), lambda: latest_runs(store, experiment, instance.job.name, limit=50)),
        (("command", instance.base_hash), lambda: runs_of_command(store, instance.base_hash, limit=50)),
    ]
    if instance.positions:
        named = base_hash(instance.config, by_name=True)
        sources.append((("command", named), lambda: runs_of_command(store, named, limit=50)))
    for source, read in sources:
        if source not in nearest:
            nearest[source] = read()
        if nearest[source]:
            break
    key = (source, _role(instance.config), tuple(instance.positions.items()))
    if key not in nearest:
        # A run recorded before the list of upstreams was holds them by the names they have now, if any.
        nearest[key] = [(run, name_free(run.config, config_positions(run.config) or instance.positions))
                        for run in _peers(nearest[source], instance.config)]
    found: list[tuple[RunRow, dict[str, Any]]] = nearest[key]
    return found


def _why_new(store: Store, experiment: str, instance: JobInstance, keys: _Keys, nearest: NearestRuns) -> str:
    recent = _recent(store, experiment, instance, nearest)
    if not recent:
        return "new"
    best: list[Difference] | None = None
    best_run: RunRow | None = None
    current = name_free(instance.config, config_positions(instance.config))
    # The nearest earlier run is the one that differs least (newest on a tie),
    # so that a new sweep point is compared with its neighbour, not the last run.
    for previous, then in recent:
        changes = config_differences(then, current, previous.params_used)
        # Runs recorded before upstreams were keyed by position hold them by name.
        was = by_position(previous.upstream, instance.positions) if not config_positions(previous.config) \
            else previous.upstream
        changes += [
            ("other", f"upstream {keys.names.get(position, position)} changed", None, None)
            for position in sorted(keys.upstream)
            if was.get(position) not in (keys.upstream[position],
                                         keys.current.keys.get(position) if keys.current else None)
        ]
        if best is None or len(changes) < len(best):
            best, best_run = changes, previous
    assert best is not None and best_run is not None
    if not best:
        if best_run.status != "succeeded":
            return f"previous run {best_run.short_id} {best_run.status}"
        return "not cached"
    return summarize([in_words(d) for d in best])
