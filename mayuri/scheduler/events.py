"""What the scheduler tells its caller as it goes (the CLI turns these into a live view)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class JobEvent:
    """A change in the state of one job instance."""

    key: str
    state: str
    reason: str = ""
    run_id: str | None = None
    attempt: int = 0
    gpus: tuple[str, ...] = ()
    duration: float | None = None


class Reporter(Protocol):
    """Receives the scheduler's events; must not block for long."""

    def event(self, event: JobEvent) -> None: ...


class SilentReporter:
    """A reporter that ignores everything (library use, tests)."""

    def event(self, event: JobEvent) -> None:
        return None
