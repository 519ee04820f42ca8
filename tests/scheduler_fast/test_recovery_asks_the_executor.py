"""Recovery judges a dead scheduler's attempt by asking the attempt's executor, never by a pid of its own.

The attempt is recorded by the real store writers as run by `fake` (reference
`fake-1`) under a scheduler whose process is gone; the executor registered
under that name says whether it is alive and how it ended.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from mayuri import executors
from mayuri.executors.base import AttemptRef
from mayuri.process_identity import boot_id, host
from mayuri.scheduler.recovery import recover
from mayuri.store import Store, open_store
from mayuri.store.attempt_records import AttemptStart, Started, begin_attempts, confirm_attempts
from mayuri.store.lease_records import register_scheduler
from mayuri.store.records import NewRun, ensure_experiment
from tests.scheduler_fast.fake_executor import FakeExecutor

RUN = "f" * 32


class Probe(FakeExecutor):
    """Answers recovery's questions as told, and remembers them."""

    def __init__(self, alive: bool) -> None:
        super().__init__()
        self.is_alive = alive
        self.asked: list[AttemptRef] = []

    def alive(self, attempt: AttemptRef) -> bool:
        self.asked.append(attempt)
        return self.is_alive

    def ended(self, attempt: AttemptRef, wait: float) -> dict[str, Any] | None:
        self.asked.append(attempt)
        return {"exit_code": 0, "ended_at": time.time()}


def _orphan(tmp_path: Path) -> Store:
    """A store with one attempt `running` on `fake`, whose scheduler's process is gone."""
    store = open_store(tmp_path / "store")
    experiment = ensure_experiment(store, "e")
    # This process's pid with another start time: a process that no longer exists.
    scheduler = register_scheduler(store, host=host(), boot_id=boot_id(), pid=os.getpid(), pid_create_time=1.0,
                                   user="u", experiment="e")
    run_dir = store.runs / RUN
    run_dir.mkdir(parents=True)
    start = AttemptStart(RUN, 1, {}, (), (),
                         new_run=NewRun(RUN, experiment, "job", "job", "c", {}, {}, {}, "new", str(run_dir)))
    assert begin_attempts(store, scheduler, host(), [start]) == [None]
    assert confirm_attempts(store, scheduler, [(start, Started("fake", "fake-1"))]) == {}
    return store


def _status(store: Store) -> tuple[str, str]:
    row = store.db.execute_sql("SELECT r.status, a.status FROM run r JOIN attempt a ON a.run_id = r.id").fetchone()
    return row[0], row[1]


def test_an_ended_attempt_is_settled_from_its_executors_record(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = _orphan(tmp_path)
    probe = Probe(alive=False)
    monkeypatch.setitem(executors._recorded, "fake", probe)
    found = recover(store)
    assert found.settled == [RUN] and _status(store) == ("succeeded", "succeeded")
    assert {(a.executor, a.ref, a.run_id, a.number) for a in probe.asked} == {("fake", "fake-1", RUN, 1)}


def test_a_live_attempt_is_left_to_be_adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _orphan(tmp_path)
    probe = Probe(alive=True)
    monkeypatch.setitem(executors._recorded, "fake", probe)
    found = recover(store)
    assert [run.run_id for run in found.adoptable] == [RUN] and not found.settled
    assert _status(store) == ("running", "running")
