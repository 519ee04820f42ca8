"""The store queries behind the dashboard, on a generated store and on one made by real runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mayuri.store import Store, open_store
from mayuri.store.browse_queries import (
    ChangeWatch,
    ParamCondition,
    QueryStopped,
    RunQuery,
    count_runs,
    experiment_groups,
    page_runs,
)
from mayuri.store.gpu_holder_queries import gpu_holders
from mayuri.store.hit_log import append_hits
from mayuri.store.lineage_queries import lineage_tree
from tests.conftest import Project

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from make_big_store import build_store


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("gen") / "big"
    build_store(root, runs=400, points=20_000, seed=1)
    store = open_store(root / ".mayuri")
    yield store
    store.close()


def test_pages_cover_the_whole_order_without_overlap(generated: Store) -> None:
    query = RunQuery()
    total = count_runs(generated, query)
    assert total == 400
    ids = [r.id for offset in range(0, total, 37) for r in page_runs(generated, query, offset, 37)]
    assert len(ids) == len(set(ids)) == 400
    created = [r.created_at for offset in range(0, total, 100) for r in page_runs(generated, query, offset, 100)]
    assert created == sorted(created, reverse=True)


def test_filters_match_a_plain_python_filter(generated: Store) -> None:
    everything = page_runs(generated, RunQuery(), 0, 1000)
    query = RunQuery(fields={"status": ("failed", "cancelled"), "user": ("ana",)},
                     params=(ParamCondition("lr", ">", 5e-4),))
    expected = {r.id for r in everything if r.status in ("failed", "cancelled") and r.user == "ana"
                and r.params.get("lr", 0) > 5e-4}
    assert expected and {r.id for r in page_runs(generated, query, 0, 1000)} == expected
    assert count_runs(generated, query) == len(expected)
    words = RunQuery(words=(everything[5].id[:6],))
    assert [r.id for r in page_runs(generated, words, 0, 10)] == [everything[5].id]


@pytest.mark.parametrize("column", ["id", "experiment", "job", "status", "metric", "duration", "user"])
def test_every_column_sorts_both_ways(generated: Store, column: str) -> None:
    for descending in (False, True):
        rows = page_runs(generated, RunQuery(sort=column, descending=descending, metric="loss"), 0, 1000)
        assert len(rows) == 400
        key = {"id": lambda r: r.id, "experiment": lambda r: r.experiment, "job": lambda r: r.job,
               "status": lambda r: r.status, "user": lambda r: r.user, "metric": lambda r: r.metric,
               "duration": lambda r: r.duration}[column]
        values = [key(r) for r in rows if key(r) is not None]
        assert values == sorted(values, reverse=descending)
        # Runs without a value (no metric, unfinished) come last either way.
        assert all(key(r) is None for r in rows[len(values):])


def test_groups_count_runs_per_experiment_and_status(generated: Store) -> None:
    groups = experiment_groups(generated, RunQuery())
    assert sum(g.runs for g in groups) == 400
    assert all(sum(g.by_status.values()) == g.runs for g in groups)


def test_change_watch_sees_commits_of_other_connections_only(generated: Store, tmp_path: Path) -> None:
    watch = ChangeWatch()
    watch.changed(generated)  # a first look at a connection always counts as a change
    assert not watch.changed(generated)
    page_runs(generated, RunQuery(), 0, 10)
    assert not watch.changed(generated)
    other = sqlite3.connect(generated.db_path, isolation_level=None)
    other.execute("UPDATE run SET hits = hits + 1 WHERE rowid = 1")
    other.close()
    assert watch.changed(generated)
    assert not watch.changed(generated)
    # An all-cached `mayuri run` counts its hits in the hit log, not in the database.
    append_hits(generated.root, ["0" * 32], 1.0)
    assert watch.changed(generated)
    assert not watch.changed(generated)


def test_lineage_trees_up_and_down(demo: Project) -> None:
    store = open_store(demo.root / ".mayuri")
    try:
        runs = demo.runs()
        prep = next(r["id"] for r in runs if r["job"] == "prep")
        trains = {r["id"] for r in runs if r["job"] == "train"}
        down = lineage_tree(store, prep, "down")
        assert {n.run_id for n in down} == trains
        up = lineage_tree(store, next(iter(trains)), "up")
        assert [n.run_id for n in up] == [prep]
        assert lineage_tree(store, prep, "down", fanout=1)[0].run_id in trains
    finally:
        store.close()


def test_gpu_holders_come_from_running_attempts_and_leases(project: Project) -> None:
    project.write("gpu.yaml", "name: g\njobs:\n  hold:\n    run: python -c \"import time; time.sleep(60)\"\n"
                              "    resources: {gpus: 1}\n")
    env = dict(os.environ, MAYURI_FAKE_GPUS="2x16GiB")
    scheduler = subprocess.Popen([sys.executable, "-m", "mayuri", "run", "gpu.yaml"], cwd=project.root, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = open_store(project.root / ".mayuri")
    try:
        deadline = time.monotonic() + 60
        while not any(h.job for h in gpu_holders(store)):
            assert time.monotonic() < deadline and scheduler.poll() is None, "no GPU claim appeared"
            time.sleep(0.1)
        holders = [h for h in gpu_holders(store) if h.run_id]
        assert {h.job for h in holders} == {"hold"} and len({h.gpu for h in holders}) == 1
    finally:
        scheduler.kill()
        scheduler.wait()
        store.close()


def test_a_query_stops_when_its_caller_gives_up(generated: Store) -> None:
    slow = RunQuery(params=(ParamCondition("lr", ">", 0),), sort="duration")
    with pytest.raises(QueryStopped):
        count_runs(generated, slow, stop=lambda: True)
    with pytest.raises(QueryStopped):
        page_runs(generated, slow, 0, 10, stop=lambda: True)
    # The connection is usable afterwards, and unhurried callers get their answer.
    assert count_runs(generated, slow, stop=lambda: False) == count_runs(generated, slow) > 0
