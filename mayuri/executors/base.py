"""The executor seam: what the scheduler asks of whatever runs its jobs.

The scheduler (`mayuri.scheduler.loop`) decides what runs, when, and what an
ending means; an `Executor` only starts one attempt's command somewhere,
learns when it ended and with which exit code, stops it (gracefully or by
force), samples its resource use, tells whether an attempt it started
earlier is still alive, settles the leftovers of an orphaned one, and says
what capacity (GPUs) it offers for placement. It never touches the store:
recording is the scheduler's, and the store never imports an executor.

Every executor keeps the same run contract (`mayuri.run_contract`): the run
folder, its files and the `MAYURI_*` variables arrive in the `LaunchSpec`
already made, and the job sees them unchanged whatever runs it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from mayuri.gpu import Gpu
    from mayuri.scheduler.placement import Request
    from mayuri.store.lease_records import Claim, Lease

    # Takes, in one store transaction fenced by the scheduler's id, the leases a choice picks
    # given the host's current leases (None: it picked nothing). The scheduler's: an executor never writes.
    Take = Callable[[Callable[[list[Lease]], list[Claim] | None]], list[Lease] | None]

from mayuri.errors import ExecutorError

# (metric key, step, value, logged_at): what a usage sample yields, stored as ordinary metrics.
Point = tuple[str, int, float, float]


@dataclass(frozen=True)
class LaunchSpec:
    """One attempt to start: its command, where, with what environment, and where its output goes."""

    command: Sequence[str] | str
    shell: bool
    cwd: Path
    env: Mapping[str, str]
    run_id: str
    run_dir: Path
    attempt: int
    # How long the job's leftover processes get after SIGTERM before SIGKILL, once it ended.
    grace: float = 10.0
    # The GPUs (by UUID) the scheduler placed it on.
    gpus: Sequence[str] = ()
    # The job's `resources:` (gpus, cpus, memory), for an engine that places jobs itself.
    resources: Mapping[str, Any] = field(default_factory=dict)
    # The job's name and `timeout` (seconds): a cluster groups a sweep by the one, limits time by the other.
    job: str = ""
    timeout: float | None = None


@dataclass
class Handle:
    """A started attempt as its executor tracks it; an executor's own handles subclass it.

    `ref` is the executor's id for the attempt, recorded with the attempt so
    that recovery, `cancel` and `doctor` can ask about it later.
    """

    ref: str
    started: float = field(default_factory=time.time)
    # The GPUs (by UUID) it was placed on.
    gpus: tuple[str, ...] = ()
    # The job's process on this host, when it runs here: recorded beside the reference, so that
    # stores read by an older Mayuri (which judges attempts by pid) stay right.
    pid: int | None = None
    pid_create_time: float | None = None
    # The machine it runs on, when an engine placed it on another one (learned once it started there).
    node: str | None = None

    def close(self) -> None:
        """Release what watching the attempt held (nothing, unless an executor says otherwise)."""


@dataclass(frozen=True)
class Exit:
    """How an attempt's process ended, as its executor learned it."""

    # Negative: killed by that signal.
    code: int
    max_rss: int = 0
    # Processes of the job still running after its main process ended, stopped by the executor.
    leftovers: int = 0
    # The end happened but its exit status could not be learned (the executor's supervisor died).
    status_lost: bool = False
    # Why it ended, when the executor knows better than its exit status ("node_lost", "host_oom"), and how.
    cause: str | None = None
    error: str | None = None
    # Why the run must not be reused although it may have succeeded (a file on the node differed from the head's).
    unreusable: str | None = None
    # The machine it ran on, when not this one (a cluster's node).
    node: str | None = None


@dataclass(frozen=True)
class AttemptRef:
    """A recorded attempt as the store knows it: which executor ran it, its id there, and where."""

    executor: str
    ref: str | None
    run_id: str
    run_dir: Path | None = None
    host: str | None = None
    boot_id: str | None = None
    pid: int | None = None
    pid_create_time: float | None = None
    # Which attempt of the run it is (None: not known).
    number: int | None = None


class Usage:
    """The usage sampling of one attempt: its peaks so far, the step of its next sample."""

    step: int = 0
    peak_rss: int = 0
    peak_gpu: int = 0
    next_at: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_at


class Executor(ABC):
    """Where jobs run. One instance per scheduler (or per command asking about recorded attempts)."""

    name: ClassVar[str]
    # The engine places jobs on GPUs itself (the scheduler takes no GPU leases for its jobs).
    places_gpus: ClassVar[bool] = False
    # Whether its jobs spool metrics and artifacts in their run folders (a remote node never opens
    # the store): the scheduler then ingests them while they run and once more when they end.
    spools: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        # The executor's table of mayuri.toml (`[executor.NAME]`), as written.
        self.options = dict(options or {})

    def preflight(self, jobs: Sequence[Any], project_root: Path, store_root: Path) -> None:
        """Refuse (a MayuriError, exit 2) before anything runs when these job instances cannot run here.

        Called once per run, only when some job must run on this executor: an
        engine that is not installed, a cluster that cannot be reached, a job no
        node could ever hold. Nothing to check by default.
        """
        return None

    @abstractmethod
    def start(self, spec: LaunchSpec) -> Handle:
        """Start an attempt; raises ExecutorError (with a sentence for the user) when it cannot."""

    def start_many(self, specs: Sequence[LaunchSpec]) -> list[Handle | ExecutorError]:
        """Start several attempts (one scheduler turn's); per spec, its handle or why it could not start.

        One by one unless an executor can overlap the starts (the local one
        sends every request to its shepherd before waiting for the answers).
        """
        started: list[Handle | ExecutorError] = []
        for spec in specs:
            try:
                started.append(self.start(spec))
            except ExecutorError as exc:
                started.append(exc)
        return started

    def waiting(self, handle: Handle) -> str | None:
        """Why a started attempt does not run yet (queued on a cluster, and the engine's reason), else None."""
        return None

    @abstractmethod
    def poll(self, handle: Handle) -> Exit | None:
        """How the attempt ended, once it has (its leftover processes stopped), else None."""

    @abstractmethod
    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        """Block until one of `handles` may have ended, or `timeout` seconds passed."""

    @abstractmethod
    def stop(self, handle: Handle, *, force: bool = False) -> None:
        """Ask the attempt's whole process tree to stop (force: kill it now); returns at once."""

    @abstractmethod
    def stop_and_wait(self, handle: Handle, grace: float) -> Exit:
        """Stop the attempt (gracefully, then by force after `grace` seconds) and return how it ended."""

    @abstractmethod
    def usage(self, handle: Handle, now: float) -> Usage:
        """A new usage sampler for a started attempt (its first sample due soon after `now`)."""

    @abstractmethod
    def sample(self, due: Sequence[tuple[Handle, Usage]], now: float) -> list[list[Point]]:
        """Sample each due attempt once; the metric points of each, in order."""

    @abstractmethod
    def alive(self, attempt: AttemptRef) -> bool:
        """Whether a recorded attempt (perhaps started by another, dead, scheduler) still runs."""

    @abstractmethod
    def settle_orphan(self, attempt: AttemptRef, grace: float) -> list[int]:
        """Stop whatever is left of a recorded attempt no scheduler watches; what was killed (for the report)."""

    def wait_ended(self, attempt: AttemptRef, timeout: float) -> None:
        """Block until a recorded attempt may have ended (ask `alive` again), or `timeout` seconds passed."""
        time.sleep(timeout)

    def ended(self, attempt: AttemptRef, wait: float) -> dict[str, Any] | None:
        """How a recorded attempt that no longer runs ended, as its executor wrote it down (`exit_code`,
        `ended_at`, `max_rss`, `leftovers`), waiting up to `wait` seconds for the record; None: no record."""
        return None

    def place(self, request: Request, devices: Sequence[Gpu], avoid: frozenset[str], take: Take) -> list[Lease] | None:
        """GPUs for an attempt that asks for some: leases on `devices` (its `capacity`) taken through `take`,
        or None when none fit now.

        By default, and for `local`, the host's GPUs by lease: the best fit
        (`mayuri.scheduler.placement.choose`) against the leases every
        scheduler of the host holds, away from the GPUs in `avoid` (a retry
        that moves) if any other fits. An executor whose cluster places GPUs
        itself returns [] (no lease on this host).
        """
        from mayuri.scheduler.placement import choose

        taken = take(lambda held: choose(request, devices, held, avoid))
        if taken is None and avoid:
            # Nowhere else to move to right now: any GPU will do rather than none.
            taken = take(lambda held: choose(request, devices, held))
        return taken

    @abstractmethod
    def capacity(self, wanted: str | list[int]) -> list[Any]:
        """The devices (`mayuri.gpu.Gpu`) it offers for placement, limited to `wanted` ([scheduler] gpus)."""

