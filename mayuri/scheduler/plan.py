"""Planning a DAG of job instances: cache decisions, GPU requests, and the `--dry-run` plan.

The scheduler's planner (a `Scheduler` holds one): it keeps each instance's
state and decides, once an instance's upstreams are settled, whether a cached
run answers it or it must run. It also works out what each instance asks of the GPUs and refuses, before
anything runs or is written, a request that this machine can never satisfy.
It launches nothing (that is `loop.py`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mayuri.cache import CacheDecision, NearestRuns, check
from mayuri.config import Settings
from mayuri.experiment.expand import JobInstance
from mayuri.experiment.shard_expand import is_reduction
from mayuri.gpu import Gpu, inventory
from mayuri.scheduler.events import JobEvent, Reporter
from mayuri.scheduler.placement import Request, check_feasible, request_for, usable
from mayuri.scheduler.reduction import blocked_as, shards_state
from mayuri.states import PLAN_TRANSITIONS
from mayuri.states import check as check_transition
from mayuri.store.db import Store
from mayuri.store.hit_log import log_hits
from mayuri.store.queries import outputs_of, used_param_sets
from mayuri.store.records import RunOrigin
from mayuri.store.scheduler_queries import peak_history
from mayuri.upstream_reads import UpstreamMemo

if TYPE_CHECKING:
    from mayuri.scheduler import attempts

SETTLED_OK = ("cached", "succeeded")
# A dry run's answers for instances that would launch: run, or wait for the same work in this plan.
DRY_LAUNCH = ("will run", "waits")


@dataclass
class Slot:
    """The state of one instance as the scheduler works through the plan."""

    instance: JobInstance
    state: str = "pending"
    reason: str = ""
    run_id: str | None = None
    fingerprint: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    # What this slot gives its downstream jobs, by content (see mayuri.results).
    results: str | None = None
    # Its upstreams' results, as the cache compares them and its run records them.
    upstream_fps: dict[str, list[str]] = field(default_factory=dict)
    request: Request = field(default_factory=Request)
    current: JobInstance | None = None
    attempt: int = 0
    causes: list[str] = field(default_factory=list)
    active: attempts.Active | None = None
    not_before: float = 0.0
    avoid: frozenset[str] = frozenset()
    sys_step: int = 0
    # In a dry run, the claim key this instance would take (see claims.py).
    claim: str | None = None
    # How many runs of this plan had succeeded when the cache last said this instance must run.
    checked: int = 0


@dataclass
class Outcome:
    """The result of scheduling a plan: every slot, and whether it was interrupted."""

    slots: list[Slot]
    interrupted: bool = False

    def count(self, state: str) -> int:
        return sum(1 for s in self.slots if s.state == state)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(s.state in SETTLED_OK for s in self.slots)

class Planner:
    """The states of one expanded experiment's instances, and the decisions that need no process."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        experiment: str,
        instances: Sequence[JobInstance],
        reporter: Reporter,
        *,
        force: bool = False,
        dry_run: bool = False,
        origin: RunOrigin | None = None,
        executor: str | None = None,
    ) -> None:
        self.store = store
        # Where the jobs that name no executor run (`mayuri run --executor`, else `[executor] default`).
        self.default_executor = executor or settings.executor.default
        # What every run this scheduler starts records as its origin.
        self.origin = origin or RunOrigin()
        self.settings = settings
        self.experiment = experiment
        self.slots = {inst.key: Slot(inst) for inst in instances}
        # Whose outputs are read here: downstream jobs' (filled in at launch) and tests' (judged).
        # A reduction's shards are read only when it is computed (`reduction.py`): a cached one needs none.
        self._outputs_read = {key for inst in instances if not is_reduction(inst) for key in inst.upstream_keys}
        self._outputs_read.update(inst.key for inst in instances if inst.job.kind == "test")
        # Whose results a downstream instance of this plan receives (their content key is worth hashing).
        self.consumed = {key for inst in instances for key in inst.upstream_keys}
        self.reporter = reporter
        self.force = force
        self.dry_run = dry_run
        self.devices: list[Gpu] = []
        # Only these can change state in `advance_pending`; the rest is never looked at again.
        self.pending = list(self.slots.values())
        # Set when a slot settles: only then can a pending slot have become decidable.
        self.changed = True
        self.cache_hits: set[str] = set()
        # Those of the hits already counted in the store (before a launch; the rest are at the end).
        self.hits_counted: set[str] = set()
        # The upstream runs' folders, output keys and read files' digests, learned once for the plan.
        self._upstreams = UpstreamMemo(store)
        # The run folders of the slots the cache answered, by instance key.
        self._cached_dirs: dict[str, str] = {}
        # The earlier runs that explain a miss, read once per pass of `advance_pending` (see `cache.check`).
        self._nearest: NearestRuns = {}
        # The sets of params earlier runs of each config used: asked once for the whole plan.
        self._used_sets: dict[str, list[list[str] | None]] | None = None
        # A dry run's planned launches by claim key (the first instance that would do each piece of work).
        self._claims: dict[str, Slot] = {}
        # Runs of this plan that succeeded so far: one may have done the work of an instance still queued.
        self.succeeded = 0

    def emit(self, slot: Slot, state: str, reason: str = "", **extra: Any) -> None:
        if state != "running":
            self.changed = True
        check_transition(PLAN_TRANSITIONS, slot.state, state)
        slot.state = state
        slot.reason = reason or slot.reason
        gpus = tuple(slot.active.gpus) if slot.active else ()
        self.reporter.event(JobEvent(slot.instance.key, state, slot.reason, slot.run_id,
                                     attempt=slot.attempt, gpus=gpus, **extra))

    def upstream_state(self, slot: Slot) -> tuple[bool, str | None]:
        """(all upstreams settled ok, the reason it can never run) for one slot."""
        if is_reduction(slot.instance):
            return shards_state(slot.instance.upstream_keys, self.slots, self.dry_run)
        for key in slot.instance.upstream_keys:
            up = self.slots[key]
            if up.state in ("failed", "skipped", "cancelled", "blocked"):
                return False, f"upstream {up.instance.key} {up.state}"
            if self.dry_run and up.state in DRY_LAUNCH:
                return False, None
            if up.state not in SETTLED_OK:
                return False, None
        return True, None

    def decide(self, slot: Slot, explain: bool = True) -> CacheDecision:
        inst = slot.instance
        slot.upstream_fps = {
            name: [self.slots[k].results or "" for k in keys] for name, keys in inst.upstream.items()
        }
        # The upstream runs now, for earlier runs that counted only the upstream files they read.
        current = None if is_reduction(inst) or not inst.upstream else self._upstreams.current({
            name: [(self.slots[k].run_id, self._folder(self.slots[k]), self.slots[k].outputs) for k in keys]
            for name, keys in inst.upstream.items()
        })
        decision = check(
            self.store, self.settings.root, self.experiment, inst, slot.upstream_fps,
            self.settings.key_env, self.force, self.known_used(inst.base_hash), current, explain, self._nearest,
        )
        if decision.hit:
            reran = sorted({self.slots[k].instance.name for k in inst.upstream_keys
                            if self.slots[k].state == "succeeded"})
            if reran:
                # Early cutoff: the upstream ran again and gave the same results.
                reason = f"upstream {', '.join(reran)} reran, same results: {decision.reason}"
                decision = CacheDecision(decision.cached, reason)
        return decision

    def _folder(self, slot: Slot) -> str | None:
        """The run folder of a settled slot, as its run records it (None: to be asked of the store)."""
        return str(slot.run_dir) if slot.run_dir is not None else self._cached_dirs.get(slot.instance.key)

    def known_used(self, base_hash: str) -> list[list[str] | None]:
        """The sets of params earlier runs of this config (without params) used; the store is asked once a plan."""
        if self._used_sets is None:
            self._used_sets = used_param_sets(self.store, {s.instance.base_hash for s in self.slots.values()})
        return self._used_sets.setdefault(base_hash, [])

    def settle_cached(self, slot: Slot, decision: CacheDecision) -> None:
        assert decision.cached is not None
        slot.run_id = decision.cached.id
        slot.fingerprint = decision.cached.fingerprint
        slot.results = decision.cached.results
        self._cached_dirs[slot.instance.key] = decision.cached.run_dir
        if slot.instance.key in self._outputs_read:
            slot.outputs = outputs_of(self.store, decision.cached.id)
        self.cache_hits.add(decision.cached.id)
        self.emit(slot, "cached", decision.reason)

    def drop_lost_hits(self, lost: set[str], ready: list[Slot]) -> list[Slot]:
        """Fail the slots whose cached run a gc collected after it was chosen; returns what may still launch."""
        for slot in self.slots.values():
            if slot.state == "cached" and slot.run_id in lost:
                self.emit(slot, "failed", f"its cached run {slot.run_id[:8]} was collected by `mayuri gc` "
                                           "meanwhile; run the file again to redo it")
        launchable = []
        for slot in ready:
            _, blocked = self.upstream_state(slot)
            if blocked:
                self.emit(slot, "skipped", blocked)
            else:
                launchable.append(slot)
        return launchable

    def _with_gpu(self, slot: Slot, reason: str) -> str:
        return f"{reason} · GPU: {slot.request.describe()}" if slot.request.gpus else reason

    def advance_pending(self) -> list[Slot]:
        """Decide every pending slot whose upstreams are settled; returns the ones to launch."""
        self.changed = False
        # No run is recorded while this pass decides: the earlier runs read to explain one miss serve all.
        self._nearest = {}
        ready = []
        for slot in self.pending:
            if slot.state != "pending":
                continue
            ok, blocked = self.upstream_state(slot)
            if blocked:
                self.emit(slot, "blocked" if self.dry_run else self._blocked_state(slot), blocked)
                continue
            if not ok:
                if self.dry_run and any(self.slots[k].state in DRY_LAUNCH for k in slot.instance.upstream_keys):
                    names = sorted({self.slots[k].instance.name for k in slot.instance.upstream_keys
                                    if self.slots[k].state in DRY_LAUNCH})
                    self._dry_launch(slot, "upstream " + ", ".join(names) + " will run")
                continue
            decision = self.decide(slot)
            if decision.hit:
                self.settle_cached(slot, decision)
            elif self.dry_run:
                self._dry_launch(slot, decision.reason)
            else:
                slot.state = "ready"
                slot.reason = decision.reason
                slot.checked = self.succeeded
                ready.append(slot)
        self.pending = [slot for slot in self.pending if slot.state == "pending"]
        return ready

    def decidable(self) -> bool:
        """Whether some pending slot can be decided now (or can never run); marks the plan changed if so."""
        if any(self.upstream_state(s) != (False, None) for s in self.pending if s.state == "pending"):
            self.changed = True
            return True
        return False

    def reconsider(self, slots: Sequence[Slot]) -> None:
        """Send waiting slots back to the cache check (the run they waited for has settled)."""
        for slot in slots:
            check_transition(PLAN_TRANSITIONS, slot.state, "pending")
            slot.state = "pending"
            self.pending.append(slot)
        if slots:
            # The awaited runs recorded which params they used: ask again.
            self._used_sets = None
            self.changed = True

    def _blocked_state(self, slot: Slot) -> str:
        """Skipped, for an instance whose upstream failed; a sharded job whose shard failed has failed."""
        if is_reduction(slot.instance):
            return blocked_as([self.slots[k] for k in slot.instance.upstream_keys])
        return "skipped"

    def _dry_launch(self, slot: Slot, reason: str) -> None:
        """Plan a launch, or, when an instance planned before claims the same work, a wait for it."""
        # Imported here: a warm check that launches nothing never needs it.
        from mayuri.scheduler.claims import claim_key

        inst = slot.instance
        # Upstreams that would run have no results yet: their claims stand for them.
        upstream = {name: [self.slots[k].results or self.slots[k].claim or "" for k in keys]
                    for name, keys in inst.upstream.items()}
        slot.claim = claim_key(inst, upstream, self.known_used(inst.base_hash))
        first = self._claims.setdefault(slot.claim, slot)
        if first is slot:
            self.emit(slot, "will run", self._with_gpu(slot, reason))
            return
        differ = sorted(k for k in inst.dims.keys() | first.instance.dims.keys()
                        if inst.dims.get(k) != first.instance.dims.get(k))
        self.emit(slot, "waits", f"same work as {first.instance.key} unless it uses "
                                  f"{', '.join(differ) or 'a param that differs'}: waits for it, then reused")

    def _check_resources(self) -> None:
        """Work out each instance's GPU request and refuse, before anything runs, one that can never fit."""
        from mayuri.executors import places_gpus

        # Only the jobs placed on this host's GPUs are checked against them: a cluster's engine places its own.
        local = [s for s in self.slots.values() if not places_gpus(s.instance.job.executor or self.default_executor)]
        if not any(s.instance.job.resources.gpus > 0 for s in local):
            return
        self.devices = usable(inventory(), self.settings.scheduler.gpus)
        for slot in local:
            inst = slot.instance
            slot.request = request_for(inst, functools.partial(
                peak_history, self.store, self.experiment, inst.name, inst.config_hash))
            check_feasible(slot.request, self.devices, inst.key)

    def answer_from_cache(self) -> list[Slot]:
        """Settle every instance a cached run answers, as far down the DAG as that goes; returns those to launch.

        Nothing is launched or registered here. When nothing is returned and
        nothing is left pending, the cache answered the whole plan
        (`all_cached`), and no scheduler needs to be loaded at all.
        """
        self._check_resources()
        ready: list[Slot] = []
        while self.changed:
            ready += self.advance_pending()
        return ready

    @property
    def undecided(self) -> bool:
        """Whether some instance still waits for a decision (on an upstream that must run first)."""
        return bool(self.pending)

    def all_cached(self) -> Outcome:
        """The outcome of a plan the cache answered whole; its hits go to the store's hit log."""
        assert not self.pending, "instances are still pending"
        log_hits(self.store, self.cache_hits - self.hits_counted, time.time())
        self.hits_counted |= self.cache_hits
        return Outcome(list(self.slots.values()))

    def plan(self) -> Outcome:
        """Decide every instance without running anything (`--dry-run`)."""
        self._check_resources()
        while True:
            before = [s.state for s in self.slots.values()]
            self.advance_pending()
            if [s.state for s in self.slots.values()] == before:
                break
        return Outcome(list(self.slots.values()))
