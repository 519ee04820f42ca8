"""The states of runs, attempts and plan instances: their names, allowed transitions, and looks.

One table each, read by the scheduler (`Planner._emit` checks each change of
an instance's state), the store's writers, the CLI (`render.py`) and the
dashboard (`tui/formatting.py`), so that a state is spelled, coloured and
allowed the same way everywhere. A transition outside the table is a bug:
`check` raises `IllegalTransition` while `STRICT` is set (the tests set it)
and otherwise lets it pass, so a user's run is never stopped by it.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """A run as the store records it (`run.status`)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ORPHANED = "orphaned"


class AttemptState(StrEnum):
    """One launch of a run (`attempt.status`)."""

    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    LOST = "lost"


class PlanState(StrEnum):
    """One job instance as a scheduler works through the plan (and as `mayuri run` shows it)."""

    PENDING = "pending"
    READY = "ready"
    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CACHED = "cached"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    # Dry runs: what a run would do.
    WILL_RUN = "will run"
    WAITS = "waits"
    BLOCKED = "blocked"


_RUN_ENDS = {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.ORPHANED}
RUN_TRANSITIONS: dict[RunState, set[RunState]] = {
    RunState.QUEUED: {RunState.RUNNING, *_RUN_ENDS},
    RunState.RUNNING: {RunState.RUNNING, *_RUN_ENDS},
    **{end: set() for end in _RUN_ENDS},
}

_ATTEMPT_ENDS = {AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.TIMEOUT, AttemptState.CANCELLED,
                 AttemptState.LOST}
ATTEMPT_TRANSITIONS: dict[AttemptState, set[AttemptState]] = {
    # A `starting` attempt that never started is removed (its run fails) or settled by recovery.
    AttemptState.STARTING: {AttemptState.RUNNING, AttemptState.CANCELLED, AttemptState.LOST},
    AttemptState.RUNNING: _ATTEMPT_ENDS,
    **{end: set() for end in _ATTEMPT_ENDS},
}

_PLAN_SETTLED = {PlanState.SUCCEEDED, PlanState.FAILED, PlanState.CACHED, PlanState.SKIPPED, PlanState.CANCELLED}
PLAN_TRANSITIONS: dict[PlanState, set[PlanState]] = {
    PlanState.PENDING: {PlanState.READY, PlanState.WILL_RUN, PlanState.WAITS, PlanState.BLOCKED, *_PLAN_SETTLED},
    # Ready: queued to launch; the cache may answer it again, a claim may park it, a reduction settles at once.
    PlanState.READY: {PlanState.READY, PlanState.RUNNING, PlanState.WAITING, *_PLAN_SETTLED},
    PlanState.WAITING: {PlanState.PENDING, PlanState.CANCELLED},
    # Running: ends, or goes back to ready for a retry.
    PlanState.RUNNING: {PlanState.RUNNING, PlanState.READY, PlanState.SUCCEEDED, PlanState.FAILED,
                        PlanState.CANCELLED},
    # A cached run that gc collected meanwhile fails its instance.
    PlanState.CACHED: {PlanState.FAILED},
    PlanState.SUCCEEDED: set(),
    PlanState.FAILED: set(),
    PlanState.SKIPPED: set(),
    PlanState.CANCELLED: set(),
    PlanState.WILL_RUN: set(),
    PlanState.WAITS: set(),
    PlanState.BLOCKED: set(),
}

# Set by the tests: a transition outside the tables raises instead of passing.
STRICT = False


class IllegalTransition(AssertionError):
    """A state changed in a way its table does not allow (a bug in Mayuri)."""


def check(table: dict[str, set[str]] | dict[PlanState, set[PlanState]] | dict[RunState, set[RunState]]
          | dict[AttemptState, set[AttemptState]], old: str, new: str) -> None:
    """Raise IllegalTransition, when STRICT, if `old` -> `new` is not in `table`."""
    if STRICT and new not in table.get(old, set()):  # type: ignore[call-overload]
        raise IllegalTransition(f"state {old!r} may not become {new!r}")


# How each state looks, in the CLI and in the dashboard alike (Rich styles).
STYLE: dict[str, str] = {
    "succeeded": "green",
    "cached": "cyan",
    "running": "yellow",
    "starting": "yellow",
    "queued": "yellow",
    "ready": "yellow",
    "will run": "yellow",
    "waits": "cyan",
    "waiting": "cyan",
    "pending": "dim",
    "failed": "bold red",
    "timeout": "red",
    "skipped": "magenta",
    "blocked": "magenta",
    "cancelled": "red",
    "orphaned": "red",
    "lost": "red",
    "collected": "dim italic",
}


def style(state: str) -> str:
    """The Rich style of a state ("" for one without a colour)."""
    return STYLE.get(state, "")
