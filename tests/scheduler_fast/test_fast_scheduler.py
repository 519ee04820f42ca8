"""Retries, OOM scaling, timeouts, cancel and fencing, decided by the real scheduler at fake speed."""

from __future__ import annotations

import sqlite3
import time

import pytest

from mayuri.scheduler.leases import Fenced
from mayuri.store.attempt_records import request_cancel
from tests.scheduler_fast.conftest import FastProject
from tests.scheduler_fast.fake_executor import FakeExecutor


def states(outcome: object) -> dict[str, str]:
    return {slot.instance.key: slot.state for slot in outcome.slots}  # type: ignore[attr-defined]


def test_a_chain_runs_in_order_and_passes_outputs(fast: FastProject) -> None:
    outcome, executor = fast.run("""
        jobs:
          make: {run: "make out.n=3", outputs: n}
          use: {run: "use n=${n}", depends_on: {make: {n: n}}}
    """)
    assert set(states(outcome).values()) == {"succeeded"}
    assert [str(s.command) for s in executor.started][1].count("n=3") == 1
    assert fast.rows("SELECT executor, executor_ref FROM attempt ORDER BY started_at") == [
        ("fake", "fake-1"), ("fake", "fake-2")]


def test_a_failure_is_retried_then_skips_dependents(fast: FastProject) -> None:
    outcome, executor = fast.run("""
        jobs:
          flaky: {run: "flaky exit=3 stderr=boom", retry: {failed: 2}}
          after: {run: "after", depends_on: flaky}
    """)
    assert states(outcome) == {"flaky": "failed", "after": "skipped"}
    assert len(executor.started) == 3
    assert fast.rows("SELECT number, status, cause FROM attempt ORDER BY number") == [
        (1, "failed", "exit"), (2, "failed", "exit"), (3, "failed", "exit")]


def test_gpu_oom_retries_with_the_scaled_param(fast: FastProject) -> None:
    outcome, executor = fast.run("""
        params: {batch: 64}
        jobs:
          train:
            run: "train batch=${batch} exit=${batch} stderr=CUDA_out_of_memory"
            retry: {oom: {max: 3, scale: {batch: 0.5}}}
    """)
    # Every attempt runs out of memory: 64, 32, 16, 8, then the retries are spent.
    commands = [str(s.command) for s in executor.started]
    assert [c.split("batch=")[1].split()[0].strip("',]") for c in commands] == ["64", "32", "16", "8"]
    assert states(outcome) == {"train": "failed"}
    assert {r[0] for r in fast.rows("SELECT cause FROM attempt")} == {"gpu_oom"}


def test_a_timeout_stops_the_job_and_is_recorded(fast: FastProject) -> None:
    began = time.monotonic()
    outcome, executor = fast.run("""
        jobs:
          slow: {run: "slow duration=3600", timeout: 30m}
    """)
    assert time.monotonic() - began < 30  # an hour of fake time
    assert states(outcome) == {"slow": "timeout"} or states(outcome) == {"slow": "failed"}
    assert executor.stops and executor.stops[0][1] is False
    assert fast.rows("SELECT status, cause FROM attempt") == [("timeout", "timeout")]


def test_cancel_requested_through_the_store_stops_the_job(fast: FastProject) -> None:
    executor = FakeExecutor()

    def before(scheduler: object) -> None:
        store = scheduler.store  # type: ignore[attr-defined]
        executor.on_start = lambda spec: request_cancel(store, [spec.run_id])

    outcome, _ = fast.run("""
        jobs:
          long: {run: "long duration=3600"}
    """, executor, before)
    assert states(outcome) == {"long": "cancelled"}
    assert executor.stops == [(executor.started[0].run_id, False)]
    assert fast.rows("SELECT status FROM run") == [("cancelled",)]


def test_a_job_starts_outside_any_transaction_and_finds_its_run(fast: FastProject) -> None:
    executor = FakeExecutor()
    seen: list[tuple[object, ...]] = []

    def look(spec: object) -> None:
        # What a job that writes to the store at its first instant sees: its run, its attempt `starting`.
        # Another connection that can write proves no transaction is held across the start.
        with sqlite3.connect(fast.root / ".mayuri" / "mayuri.db", timeout=0.1) as conn:
            conn.execute("BEGIN IMMEDIATE")
            seen.extend(conn.execute("SELECT r.status, a.status, a.executor_ref FROM run r "
                                     "JOIN attempt a ON a.run_id = r.id WHERE r.id = ?",
                                     (spec.run_id,)).fetchall())  # type: ignore[attr-defined]
            conn.rollback()

    executor.on_start = look
    outcome, _ = fast.run("""
        jobs:
          one: {run: "one"}
    """, executor)
    assert seen == [("running", "starting", None)]
    assert fast.rows("SELECT status, executor, executor_ref FROM attempt") == [("succeeded", "fake", "fake-1")]


def test_a_reclaimed_scheduler_records_nothing_more(fast: FastProject) -> None:
    executor = FakeExecutor()

    def reclaim(spec: object) -> None:
        # Another process judged this scheduler dead and took its rows over.
        with sqlite3.connect(fast.root / ".mayuri" / "mayuri.db", timeout=30) as conn:
            conn.execute("UPDATE scheduler SET status = 'orphaned'")

    executor.on_start = reclaim
    with pytest.raises(Fenced):
        fast.run("""
            jobs:
              one: {run: "one duration=5"}
        """, executor)
    # Reclaimed between its two writes: the job it had started does not run on unrecorded.
    assert executor.stops and not fast.rows("SELECT 1 FROM attempt WHERE status = 'running'")
