"""A scheduler registers only when it launches something, and counts its cache hits before any launch.

gc keeps the reusable runs of an experiment that a live scheduler runs, and
never collects a run used after its plan was made: a result reused from the
cache must be counted (or the scheduler registered) before a job that reads it
starts. An all-cached run launches nothing, so it only counts its hits (in the hit log).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from sched_helpers import query

from mayuri.run_experiment import RunRequest, run_experiment
from mayuri.scheduler.events import JobEvent

EXP = """
    name: lazy
    jobs:
      prep:
        run: python -c "print('prep')"
      train:
        run: python -c "print('train ${lr}')"
        params: {lr: 1}
        depends_on: [prep]
    """


def _runs(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for job, *rest in query(db, "SELECT job, id, hits, last_used_at, created_at, status FROM run ORDER BY created_at"):
        found.setdefault(job, []).append(tuple(rest))
    return found


def test_an_all_cached_run_registers_no_scheduler_and_counts_its_hits(project: Any) -> None:
    project.write("exp.yaml", EXP)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    assert query(project.db, "SELECT status FROM scheduler") == [("finished",)]

    again = project.mayuri("run", "exp.yaml")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("cached (run") == 2, again.stderr
    assert query(project.db, "SELECT status FROM scheduler") == [("finished",)]
    # Counted in the store's hit log, and seen by every reader of the runs.
    assert [(r["hits"], r["job"]) for r in project.runs()] == [(1, "train"), (1, "prep")]
    runs = _runs(project.db)
    assert [r[1] for r in runs["prep"] + runs["train"]] == [0, 0]
    assert len((project.db.parent / "hits.log").read_text().splitlines()) == 2

    # Once the closure snapshots are taken, an all-cached run leaves the database as it was.
    before = hashlib.sha512(project.db.read_bytes()).hexdigest()
    assert project.mayuri("run", "exp.yaml").returncode == 0
    assert hashlib.sha512(project.db.read_bytes()).hexdigest() == before
    assert [r["hits"] for r in project.runs()] == [2, 2]


def test_hits_are_counted_before_anything_downstream_launches(project: Any) -> None:
    project.write("exp.yaml", EXP)
    assert project.mayuri("run", "exp.yaml").returncode == 0

    done = project.mayuri("run", "exp.yaml", "train.lr=2")
    assert done.returncode == 0, done.stderr
    runs = _runs(project.db)
    (_, hits, last_used, _, _), = runs["prep"]
    new_train = runs["train"][-1]
    assert hits == 1
    # Counted in the transaction that registered the scheduler, before the new run was even created.
    assert last_used <= new_train[3]
    assert query(project.db, "SELECT status FROM scheduler") == [("finished",), ("finished",)]


class _GcMeanwhile:
    """Collects the upstream's cached run as soon as the scheduler reports it cached, as a racing gc could."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.events: list[JobEvent] = []

    def event(self, event: JobEvent) -> None:
        self.events.append(event)
        if event.key == "prep" and event.state == "cached":
            conn = sqlite3.connect(self.db, timeout=30)
            with conn:
                conn.execute("UPDATE run SET collected_status = status, status = 'collected' WHERE id = ?",
                             (event.run_id,))
            conn.close()


def test_a_hit_collected_before_it_was_counted_launches_nothing_that_needs_it(
        project: Any, monkeypatch: Any) -> None:
    project.write("exp.yaml", EXP)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    monkeypatch.chdir(project.root)
    reporter = _GcMeanwhile(project.db)

    result = run_experiment(RunRequest(file=Path("exp.yaml"), overrides=("train.lr=2",)), reporter, project.root)

    states = {s.instance.key: (s.state, s.reason) for s in result.outcome.slots}
    assert states["prep"][0] == "failed" and "collected by `mayuri gc`" in states["prep"][1]
    assert states["train"] == ("skipped", "upstream prep failed")
    assert not result.ok
    runs = _runs(project.db)
    assert len(runs["train"]) == 1  # the new point of train never started
    assert runs["prep"][0][1] == 0  # a collected run gets no hit
