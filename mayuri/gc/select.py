"""Which runs a gc collects and which it keeps, with the reason for each kept one.

Pure: it works on what the planner read from the store and the filesystem,
and touches neither. The rules, in order:

1. never an active run (queued, running, or any state that is not finished),
   a pinned run, a run used (created, ended or reused from the cache)
   within the grace period, or a reusable run of an experiment that a live
   `mayuri run` is running (it may be reusing it right now);
2. `--experiment` narrows gc to one experiment; `failed` narrows to failed,
   cancelled, orphaned and lost runs; `keep_last N` keeps the N newest
   succeeded runs of each job;
3. `older_than` collects what was last used longer ago; without it, `failed`
   or `keep_last` alone collect everything they leave eligible;
4. `max_size` then collects eligible runs, least recently used first, until
   the store fits;
5. lineage: a kept run keeps every run whose folder its params, resolved
   params or outputs name by path, and an active run keeps all its parents;
   repeated until nothing changes (a kept run's needs are kept too).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mayuri.gc.policy import Policy
from mayuri.store.gc_queries import GcRun

FAILED_STATES = ("failed", "cancelled", "orphaned", "lost")


@dataclass
class Sizes:
    """Bytes that collecting each run would free: its folder, and blobs only it references."""

    folders: Mapping[str, int]
    blob_size: Mapping[str, int]
    run_blobs: Mapping[str, set[str]]
    blob_refs: Mapping[str, set[str]]
    total: int
    already_free: int = 0

    def __post_init__(self) -> None:
        self._left = {sha: len(refs) for sha, refs in self.blob_refs.items()}
        self.freed = self.already_free

    def take(self, run_id: str) -> None:
        self.freed += self.folders.get(run_id, 0)
        for sha in self.run_blobs.get(run_id, ()):
            self._left[sha] -= 1
            if self._left[sha] == 0:
                self.freed += self.blob_size.get(sha, 0)

    def give_back(self, run_id: str) -> None:
        self.freed -= self.folders.get(run_id, 0)
        for sha in self.run_blobs.get(run_id, ()):
            if self._left[sha] == 0:
                self.freed -= self.blob_size.get(sha, 0)
            self._left[sha] += 1

    @property
    def projected(self) -> int:
        return self.total - self.freed


@dataclass
class Choice:
    """The runs to collect, and the kept runs that a rule (not mere ineligibility) saved."""

    collect: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)


def _protected(
    run: GcRun, now: float, policy: Policy, explicit: bool, in_use: Mapping[str | None, int]
) -> str | None:
    if not run.finished:
        return run.status
    if run.pinned:
        return "pinned"
    # A live `mayuri run` may have picked this result from the cache already
    # and not yet recorded the hit (it does so at its end).
    pid = in_use.get(run.experiment, in_use.get(None))
    if run.reusable and pid is not None:
        return f"reusable while `mayuri run` (pid {pid}) runs its experiment"
    if not explicit and run.last_use >= now - policy.grace:
        return "used within the grace period"
    return None


def _last_n(runs: Iterable[GcRun], policy: Policy) -> set[str]:
    by_job: dict[tuple[str, str], list[GcRun]] = defaultdict(list)
    for run in runs:
        if run.status == "succeeded":
            by_job[(run.experiment, run.job)].append(run)
    kept: set[str] = set()
    for (experiment, _job), group in by_job.items():
        n = policy.rules_for(experiment).keep_last
        if n is not None:
            kept.update(r.id for r in sorted(group, key=lambda r: r.created_at, reverse=True)[:n])
    return kept


def choose_runs(
    runs: list[GcRun],
    policy: Policy,
    now: float,
    needs: Mapping[str, set[str]],
    parents: Mapping[str, set[str]],
    sizes: Sizes,
    explicit: set[str] | None = None,
    in_use: Mapping[str | None, int] | None = None,
) -> Choice:
    """Apply the rules of this module; `explicit` (cache rm) replaces rules 2-4 by a given set of runs."""
    live = {r.id: r for r in runs if not r.collected}
    choice = Choice()
    eligible: list[GcRun] = []
    newest = _last_n(live.values(), policy) if explicit is None else set()
    for run in live.values():
        if explicit is not None and run.id not in explicit:
            continue
        if (
            explicit is None
            and policy.experiment is not None
            and run.experiment != policy.experiment
        ):
            continue
        reason = _protected(run, now, policy, explicit is not None, in_use or {})
        rules = policy.rules_for(run.experiment)
        if reason is None and run.id in newest:
            reason = f"one of the last {rules.keep_last} of its job"
        if reason is not None:
            choice.kept[run.id] = reason
        elif explicit is not None or not rules.failed or run.status in FAILED_STATES:
            eligible.append(run)
    selected: set[str] = set()
    for run in eligible:
        rules = policy.rules_for(run.experiment)
        if (
            explicit is not None
            or (rules.older_than is not None and now - run.last_use > rules.older_than)
            or (rules.older_than is None and rules.selects)
        ):
            selected.add(run.id)
            sizes.take(run.id)
    blocked: set[str] = set()
    while True:
        _keep_needs(live, selected, needs, parents, sizes, choice, blocked)
        if policy.max_size is None or explicit is not None or sizes.projected <= policy.max_size:
            break
        added = False
        for run in sorted(eligible, key=lambda r: r.last_use):
            if sizes.projected <= policy.max_size:
                break
            if run.id not in selected and run.id not in blocked:
                selected.add(run.id)
                sizes.take(run.id)
                added = True
        if not added:
            break
    choice.collect = [r.id for r in sorted(eligible, key=lambda r: r.last_use) if r.id in selected]
    return choice


def _keep_needs(
    live: Mapping[str, GcRun],
    selected: set[str],
    needs: Mapping[str, set[str]],
    parents: Mapping[str, set[str]],
    sizes: Sizes,
    choice: Choice,
    blocked: set[str],
) -> None:
    queue = [rid for rid in live if rid not in selected]
    seen = set(queue)
    while queue:
        keeper = queue.pop()
        wanted = set(needs.get(keeper, ()))
        if not live[keeper].finished:
            wanted |= parents.get(keeper, set())
        for rid in wanted:
            if rid in selected:
                selected.discard(rid)
                sizes.give_back(rid)
                blocked.add(rid)
                choice.kept[rid] = f"needed by run {keeper[:8]}"
            if rid in live and rid not in seen:
                seen.add(rid)
                queue.append(rid)
