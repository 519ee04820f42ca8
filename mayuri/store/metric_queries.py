"""Reading metrics back: per-run summaries, key lists and (downsampled) series.

Read-only. Listings, `show`, `expect` and the dashboard read summaries (one
row per run and key) and never scan raw points; only a series scans points,
through the (run_id, key_id, step) index. A NULL value is NaN (see
`metric_records`) and is given back as float('nan').
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from mayuri.store.db import Store

NAN = math.nan


@dataclass(frozen=True)
class Summary:
    """What is known of one metric of one run without reading its points."""

    last: float
    last_step: int | None
    min: float
    min_step: int | None
    max: float
    max_step: int | None
    count: int
    updated_at: float | None

    def best(self, mode: str = "min") -> float:
        """The lowest (mode 'min') or highest (mode 'max') value logged."""
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}.")
        return self.min if mode == "min" else self.max


def _value(value: float | None) -> float:
    return NAN if value is None else value


def metric_summaries(store: Store, run_ids: Iterable[str]) -> dict[str, dict[str, Summary]]:
    """{run_id: {key: Summary}} for the given runs (runs without metrics are absent)."""
    result: dict[str, dict[str, Summary]] = {}
    rows = store.select_in(
        "SELECT s.run_id, k.name, s.last, s.last_step, s.min, s.min_step, s.max, s.max_step, "
        "s.count, s.updated_at FROM metric_summary s JOIN metric_key k ON k.id = s.key_id "
        "WHERE s.run_id IN ({marks}) ORDER BY k.name",
        list(run_ids),
    )
    for run_id, name, last, last_step, low, low_step, high, high_step, count, updated in rows:
        result.setdefault(run_id, {})[name] = Summary(
            _value(last), last_step, _value(low), low_step, _value(high), high_step, count, updated
        )
    return result


def _key_id(store: Store, key: str) -> int | None:
    row = store.db.execute_sql("SELECT id FROM metric_key WHERE name = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def metric_series(
    store: Store, run_id: str, key: str, max_points: int | None = None
) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric of one run, in step order.

    With `max_points`, a long series is cut into max_points/2 buckets of steps
    and each bucket keeps its lowest and highest point, so spikes survive.
    """
    key_id = _key_id(store, key)
    if key_id is None:
        return [], []
    where = "WHERE run_id = ? AND key_id = ?"
    args: tuple[object, ...] = (run_id, key_id)
    if max_points is not None:
        count, first, last = store.db.execute_sql(
            f"SELECT count(*), min(step), max(step) FROM metric {where}", args
        ).fetchone()
        if count > max_points >= 2:
            return _downsampled(store, where, args, first, last, max_points)
    rows = store.db.execute_sql(f"SELECT step, value FROM metric {where} ORDER BY step, rowid", args)
    steps: list[int] = []
    values: list[float] = []
    for step, value in rows:
        steps.append(step)
        values.append(NAN if value is None else value)
    return steps, values


def _downsampled(
    store: Store, where: str, args: tuple[object, ...], first: int, last: int, max_points: int
) -> tuple[list[int], list[float]]:
    width = max((last - first + 1) / (max_points // 2), 1.0)
    points: dict[int, float] = {}
    # With exactly one min() or max() in a query, SQLite takes the bare
    # column `step` from the row that holds that extreme.
    for extreme in ("min", "max"):
        cursor = store.db.execute_sql(
            f"SELECT CAST((step - ?) / ? AS INTEGER) AS bucket, step, {extreme}(value) FROM metric "
            f"{where} AND value IS NOT NULL GROUP BY bucket",
            (first, width, *args),
        )
        for _, step, value in cursor:
            points[step] = value
    ordered = sorted(points.items())
    return [s for s, _ in ordered], [v for _, v in ordered]


def metric_keys(store: Store, run_id: str) -> list[str]:
    """The names of the metrics a run has logged."""
    rows = store.db.execute_sql(
        "SELECT k.name FROM metric_summary s JOIN metric_key k ON k.id = s.key_id "
        "WHERE s.run_id = ? ORDER BY k.name",
        (run_id,),
    )
    return [name for (name,) in rows]
