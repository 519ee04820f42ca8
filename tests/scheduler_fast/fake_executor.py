"""An in-process executor for the fast tier: jobs are scripted, time is a fake clock.

A job's command says what it does, as `key=value` words (the rest is
ignored): `duration=SECONDS` (fake seconds until it ends; default 1),
`exit=CODE` (default 0), `stderr=TEXT` (written to stderr.log when it ends,
`_` for spaces), `out.NAME=VALUE` (written to outputs.json). The clock only
moves when the scheduler waits: a wait moves it to the next end, or by the
timeout. Nothing runs, so a test of retries, timeouts or cancels takes
milliseconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mayuri.executors.base import AttemptRef, Executor, Exit, Handle, LaunchSpec, Point, Usage


class FakeClock:
    """A monotonic clock that moves only when told to (it starts at the real one's reading)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@dataclass(kw_only=True)
class FakeHandle(Handle):
    spec: LaunchSpec
    ends_at: float
    code: int
    stderr: str
    outputs: dict[str, Any]
    stopped: int | None = None


class NoUsage(Usage):
    next_at = float("inf")


@dataclass
class FakeExecutor(Executor):
    clock: FakeClock = field(default_factory=FakeClock)
    # Called with each launch as it starts (a test's way to cancel, fence or look).
    on_start: Callable[[LaunchSpec], None] | None = None
    started: list[LaunchSpec] = field(default_factory=list)
    stops: list[tuple[str, bool]] = field(default_factory=list)
    name = "fake"

    def __post_init__(self) -> None:
        super().__init__()
        self._count = 0

    def start(self, spec: LaunchSpec) -> Handle:
        words = spec.command.split() if isinstance(spec.command, str) else list(spec.command)
        given = dict(w.split("=", 1) for w in words if "=" in w)
        self._count += 1
        self.started.append(spec)
        handle = FakeHandle(
            f"fake-{self._count}", time.time(), tuple(spec.gpus), spec=spec,
            ends_at=self.clock.now + float(given.get("duration", 1)), code=int(given.get("exit", 0)),
            stderr=given.get("stderr", "").replace("_", " "),
            outputs={k[4:]: json.loads(v) for k, v in given.items() if k.startswith("out.")},
        )
        if self.on_start is not None:
            self.on_start(spec)
        return handle

    def _end(self, handle: FakeHandle, code: int) -> Exit:
        run_dir = handle.spec.run_dir
        if handle.stderr:
            with open(run_dir / "stderr.log", "a", encoding="utf-8") as out:
                out.write(handle.stderr + "\n")
        if handle.outputs and code == 0:
            (run_dir / "outputs.json").write_text(json.dumps(handle.outputs), encoding="utf-8")
        return Exit(code)

    def poll(self, handle: Handle) -> Exit | None:
        assert isinstance(handle, FakeHandle)
        if handle.stopped is not None:
            return self._end(handle, handle.stopped)
        if self.clock.now >= handle.ends_at:
            return self._end(handle, handle.code)
        return None

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        ends = [h.ends_at for h in handles if isinstance(h, FakeHandle)]
        self.clock.now = min([self.clock.now + timeout, *ends]) if ends else self.clock.now + timeout

    def stop(self, handle: Handle, *, force: bool = False) -> None:
        assert isinstance(handle, FakeHandle)
        self.stops.append((handle.spec.run_id, force))
        handle.stopped = -9 if force else -15

    def stop_and_wait(self, handle: Handle, grace: float) -> Exit:
        self.stop(handle)
        return self._end(handle, -15) if isinstance(handle, FakeHandle) else Exit(-15)

    def usage(self, handle: Handle, now: float) -> Usage:
        return NoUsage()

    def sample(self, due: Sequence[tuple[Handle, Usage]], now: float) -> list[list[Point]]:
        return [[] for _ in due]

    def alive(self, attempt: AttemptRef) -> bool:
        return False

    def settle_orphan(self, attempt: AttemptRef, grace: float) -> list[int]:
        return []

    def capacity(self, wanted: str | list[int]) -> list[Any]:
        return []
