"""The store writers refuse a run or attempt state change outside mayuri/states.py's tables (under tests).

The root conftest sets `states.STRICT` for every test: a writer then reads
the row's current state in its transaction and raises `IllegalTransition`,
rolling the write back. Without it (a user's run) nothing is read or refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mayuri import states
from mayuri.store import Store, open_store
from mayuri.store.attempt_records import AttemptEnd, EndRecord, record_ends
from mayuri.store.lease_records import register_scheduler
from mayuri.store.records import (
    RunClose,
    create_run,
    ensure_experiment,
    finish_attempt,
    finish_run,
    mark_run,
    start_attempt,
)

RUN = "a" * 32


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = open_store(tmp_path / "store")
    experiment = ensure_experiment(opened, "transitions")
    create_run(opened, run_id=RUN, experiment_id=experiment, job="j", kind="job", config_hash="c", params={},
               config={}, upstream={}, reason="new", run_dir=opened.runs / RUN)
    return opened


def _status(store: Store, table: str = "run") -> str:
    column = "id" if table == "run" else "run_id"
    row = store.db.execute_sql(f"SELECT status FROM {table} WHERE {column} = ?", (RUN,)).fetchone()
    return str(row[0])


def test_an_ended_run_cannot_be_closed_again(store: Store) -> None:
    finish_run(store, RUN, status="succeeded", exit_code=0)
    with pytest.raises(states.IllegalTransition, match="'succeeded' may not become 'failed'"):
        finish_run(store, RUN, status="failed", exit_code=1)
    with pytest.raises(states.IllegalTransition, match="may not become 'cancelled'"):
        mark_run(store, RUN, "cancelled", "too late")
    # The refused writes were rolled back.
    assert _status(store) == "succeeded"


def test_an_ended_attempt_cannot_end_again_nor_run_again(store: Store) -> None:
    start_attempt(store, RUN, 1, pid=1, pid_create_time=None, params={})
    finish_attempt(store, RUN, 1, status="failed", exit_code=1, signal=None, cause="exit")
    with pytest.raises(states.IllegalTransition, match="attempt 1 of run .*'failed' may not become 'succeeded'"):
        finish_attempt(store, RUN, 1, status="succeeded", exit_code=0, signal=None, cause=None)
    scheduler = register_scheduler(store, host="h", boot_id="b", pid=1, pid_create_time=None, user="u",
                                   experiment="transitions")
    end = AttemptEnd("succeeded", 0, None, None, None)
    with pytest.raises(states.IllegalTransition):
        record_ends(store, scheduler, [EndRecord(RUN, 1, end, close=RunClose("succeeded", 0, None))])
    assert (_status(store, "attempt"), _status(store)) == ("failed", "running")


def test_a_state_no_table_knows_is_refused(store: Store) -> None:
    mark_run(store, RUN, "running")
    with pytest.raises(states.IllegalTransition, match="'running' may not become 'skipped'"):
        mark_run(store, RUN, "skipped")  # a plan instance's state, never a run's


def test_without_strict_nothing_is_checked(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(states, "STRICT", False)
    finish_run(store, RUN, status="succeeded", exit_code=0)
    mark_run(store, RUN, "cancelled", "a bug, but a user's run is never stopped by the check")
    assert _status(store) == "cancelled"
