"""Metric storage: interned keys, summaries kept current across batches, NaN and inf, series."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable

from mayuri.store import Store
from mayuri.store.metric_queries import metric_keys, metric_series, metric_summaries
from mayuri.store.metric_records import append_points


def test_schema_is_the_agreed_one(store: Store) -> None:
    with sqlite3.connect(store.db_path) as con:
        columns = {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")]
                   for t in ("metric_key", "metric", "metric_summary", "artifact", "artifact_file")}
        indexes = [r[1] for r in con.execute("PRAGMA index_list(metric)")]
    assert columns == {
        "metric_key": ["id", "name"],
        "metric": ["run_id", "key_id", "step", "value", "logged_at"],
        "metric_summary": ["run_id", "key_id", "last", "last_step", "min", "min_step", "max", "max_step",
                           "count", "updated_at"],
        "artifact": ["run_id", "name", "kind", "size", "created_at"],
        "artifact_file": ["run_id", "name", "relpath", "sha512", "size"],
    }
    assert "metric_run_key_step" in indexes


def test_summary_is_merged_across_batches(store: Store, make_run: Callable[[Store], str]) -> None:
    run = make_run(store)
    append_points(store, run, [("loss", 0, 3.0, 1.0), ("loss", 1, 1.0, 1.0), ("acc", 0, 0.1, 1.0)])
    append_points(store, run, [("loss", 2, 2.0, 2.0), ("loss", 3, 5.0, 2.0), ("acc", 1, 0.05, 2.0)])
    loss = metric_summaries(store, [run])[run]["loss"]
    assert (loss.last, loss.last_step, loss.count) == (5.0, 3, 4)
    assert (loss.min, loss.min_step, loss.max, loss.max_step) == (1.0, 1, 5.0, 3)
    acc = metric_summaries(store, [run])[run]["acc"]
    assert (acc.min, acc.min_step, acc.max, acc.max_step) == (0.05, 1, 0.1, 0)
    assert metric_keys(store, run) == ["acc", "loss"]
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("SELECT count(*) FROM metric_key").fetchone()[0] == 2


def test_nan_and_inf_are_kept(store: Store, make_run: Callable[[Store], str]) -> None:
    run = make_run(store)
    append_points(store, run, [("x", 0, math.nan, 1.0)])
    only_nan = metric_summaries(store, [run])[run]["x"]
    assert math.isnan(only_nan.last) and math.isnan(only_nan.min) and only_nan.min_step is None
    append_points(store, run, [("x", 1, math.inf, 1.0), ("x", 2, -math.inf, 1.0), ("x", 3, 2.0, 1.0),
                               ("x", 4, math.nan, 1.0)])
    steps, values = metric_series(store, run, "x")
    assert steps == [0, 1, 2, 3, 4]
    assert math.isnan(values[0]) and values[1:4] == [math.inf, -math.inf, 2.0] and math.isnan(values[4])
    summary = metric_summaries(store, [run])[run]["x"]
    assert (summary.max, summary.max_step, summary.min, summary.min_step) == (math.inf, 1, -math.inf, 2)
    assert math.isnan(summary.last) and summary.last_step == 4 and summary.count == 5


def test_downsampled_series_keeps_extremes(store: Store, make_run: Callable[[Store], str]) -> None:
    run = make_run(store)
    points = [("y", step, float(step % 7), 1.0) for step in range(10_000)]
    points[5_000] = ("y", 5_000, 99.0, 1.0)
    append_points(store, run, points)
    steps, values = metric_series(store, run, "y", max_points=100)
    assert 2 <= len(steps) <= 100 and len(steps) == len(values)
    assert steps == sorted(steps)
    assert 99.0 in values
    assert metric_series(store, run, "nope") == ([], [])


def test_points_go_with_their_run(store: Store, make_run: Callable[[Store], str]) -> None:
    run = make_run(store)
    append_points(store, run, [("z", 0, 1.0, 1.0)])
    with store.write():
        store.db.execute_sql("DELETE FROM run WHERE id = ?", (run,))
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("SELECT count(*) FROM metric").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM metric_summary").fetchone()[0] == 0
