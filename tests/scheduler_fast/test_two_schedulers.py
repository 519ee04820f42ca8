"""Two schedulers on one store, in one process: claims, GPU leases and fencing keep work from being done
or recorded twice.

Each `Scheduler` runs in its own thread with its own store connection and
`FakeExecutor`, as two `mayuri run` would. The first one's job is held
running (its executor reports no end until the test lets it), so the second
one meets it in flight: at the claim of the same work, at the lease of the
only GPU, or, when the first one looks dead, by reclaiming it (the first
one's late writes are then refused).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from mayuri import executors
from mayuri.executors.base import Exit, Handle, LaunchSpec
from mayuri.scheduler.leases import Fenced
from tests.scheduler_fast.conftest import Events, FastProject
from tests.scheduler_fast.fake_executor import FakeExecutor

TIMEOUT = 60.0


class Held(FakeExecutor):
    """A FakeExecutor whose jobs do not end until `release` is set; waits take a little real time."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.running = threading.Event()

    def start(self, spec: LaunchSpec) -> Handle:
        handle = super().start(spec)
        self.running.set()
        return handle

    def poll(self, handle: Handle) -> Exit | None:
        return super().poll(handle) if self.release.is_set() else None

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        # Real time passes too: the other scheduler's thread gets its turns.
        time.sleep(0.002)
        super().wait(handles, timeout)


def _in_thread(fast: FastProject, yaml: str, executor: FakeExecutor, file: str,
               events: Events | None = None) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["outcome"], _ = fast.run(yaml, executor, file=file, events=events)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _states(result: dict[str, Any]) -> dict[str, str]:
    if "error" in result:
        raise result["error"]
    return {slot.instance.key: slot.state for slot in result["outcome"].slots}


def _until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_the_same_work_is_run_once_and_reused_by_the_other_scheduler(fast: FastProject) -> None:
    yaml = """
        name: shared
        jobs:
          train: {run: "train out.score=1", outputs: score}
    """
    first, second = Held(), Held()
    second.release.set()
    thread_a, a = _in_thread(fast, yaml, first, "a.yaml")
    assert first.running.wait(TIMEOUT)
    seen = Events()
    thread_b, b = _in_thread(fast, yaml, second, "b.yaml", seen)
    # The second scheduler finds the work claimed by the first one's running run, and waits for it.
    _until(lambda: any(e.state == "waiting" for e in seen.seen), "the second scheduler to wait")
    time.sleep(0.1)
    assert second.started == []
    first.release.set()
    thread_a.join(TIMEOUT)
    thread_b.join(TIMEOUT)
    assert not thread_a.is_alive() and not thread_b.is_alive()
    assert _states(a) == {"train": "succeeded"}
    assert _states(b) == {"train": "cached"}
    assert len(first.started) == 1 and second.started == []
    assert fast.rows("SELECT status FROM run") == [("succeeded",)]
    assert fast.rows("SELECT status FROM scheduler ORDER BY started_at") == [("finished",), ("finished",)]


def test_the_only_gpu_is_leased_to_one_scheduler_at_a_time(fast: FastProject, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAYURI_FAKE_GPUS", "1x16GiB")
    first, second = Held(), Held()
    second.release.set()
    thread_a, a = _in_thread(fast, """
        jobs:
          one: {run: "one", resources: {gpus: 1}}
    """, first, "one.yaml")
    assert first.running.wait(TIMEOUT)
    seen = Events()
    thread_b, b = _in_thread(fast, """
        jobs:
          two: {run: "two", resources: {gpus: 1}}
    """, second, "two.yaml", seen)
    # The second scheduler waits for the GPU the first one's job holds.
    _until(lambda: any(e.reason == "waiting for a GPU" for e in seen.seen), "the second scheduler to wait")
    time.sleep(0.1)
    assert second.started == []
    assert fast.rows("SELECT COUNT(*) FROM gpu_lease") == [(1,)]
    first.release.set()
    thread_a.join(TIMEOUT)
    thread_b.join(TIMEOUT)
    assert _states(a) == {"one": "succeeded"} and _states(b) == {"two": "succeeded"}
    assert [list(s.gpus) for s in first.started] == [list(s.gpus) for s in second.started]
    assert fast.rows("SELECT COUNT(*) FROM gpu_lease") == [(0,)]


def test_a_scheduler_judged_dead_by_the_other_is_fenced(fast: FastProject, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = Held(), Held()
    second.release.set()
    # Recovery asks the attempt's executor (`fake`) about it: not alive, no record of its end.
    monkeypatch.setitem(executors._recorded, "fake", first)
    thread_a, a = _in_thread(fast, """
        jobs:
          one: {run: "one"}
    """, first, "one.yaml")
    assert first.running.wait(TIMEOUT)
    _until(lambda: fast.rows("SELECT status FROM attempt") == [("running",)], "the first job to be recorded running")
    # The first scheduler now looks dead (its process identity no longer matches), as after a crash.
    fast.rows("UPDATE scheduler SET pid_create_time = 1.0")
    outcome, _ = fast.run("""
        jobs:
          two: {run: "two"}
    """, second, file="two.yaml")
    assert {s.instance.key: s.state for s in outcome.slots} == {"two": "succeeded"}
    # The second one's recovery reclaimed the first one and orphaned its run.
    assert fast.rows("SELECT r.job, r.status, a.status FROM run r JOIN attempt a ON a.run_id = r.id "
                     "ORDER BY r.created_at") == [("one", "orphaned", "lost"), ("two", "succeeded", "succeeded")]
    first.release.set()
    thread_a.join(TIMEOUT)
    assert isinstance(a.get("error"), Fenced)
    # Its late end changed nothing: no run is recorded twice.
    assert fast.rows("SELECT r.job, r.status FROM run r ORDER BY r.created_at") == [
        ("one", "orphaned"), ("two", "succeeded")]
