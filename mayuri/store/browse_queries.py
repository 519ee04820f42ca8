"""Read-only queries behind the dashboard's runs list: paged, filtered, sorted, grouped.

Built for stores of 100,000 runs: a screen asks for the count and for one page
at a time, never for every row, and watches `PRAGMA data_version` to know when
to ask again. Nothing here writes, and nothing here knows about Textual.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import peewee

from mayuri.errors import StoreError
from mayuri.experiment.interpolate import instance_label
from mayuri.store.db import Store
from mayuri.store.hit_log import log_stamp
from mayuri.store.shard_queries import ShardProgress, shard_progress

SORTABLE = ("id", "experiment", "job", "status", "params", "metric", "gpu", "duration", "user",
            "started")
# (expression, may be NULL). "started" orders by creation, which the index
# run_created serves: a run is created when queued and starts right after.
_SORT_SQL = {
    "id": ("run.id", False),
    "experiment": ("experiment.name", False),
    "job": ("run.job", False),
    "status": ("run.status", False),
    "params": ("run.params", False),
    "metric": ("main_metric", True),
    "gpu": ("gpus", True),
    "duration": ("(run.ended_at - run.started_at)", True),
    "user": ("run.user", False),
    "started": ("run.created_at", False),
}
_FIELDS = {"experiment": "experiment.name", "job": "run.job", "status": "run.status",
           "user": "run.user", "host": "run.host"}
OPERATORS = ("=", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class ParamCondition:
    """`key op value` on a run's params (dotted keys reach into nested params)."""

    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class RunQuery:
    """What the runs list shows: filters, the main metric column, and the order."""

    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    params: tuple[ParamCondition, ...] = ()
    words: tuple[str, ...] = ()
    metric: str | None = None
    sort: str = "started"
    descending: bool = True
    # The shards of a job as one line (its newest shard run stands for the group), except the
    # groups (`RunListRow.group`) listed in `expanded`, whose every shard run is listed.
    shard_groups: bool = True
    expanded: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RunListRow:
    """One line of the runs list: only what the table shows."""

    id: str
    experiment: str
    job: str
    status: str
    params: dict[str, Any]
    metric: float | None
    gpus: list[str]
    started_at: float | None
    ended_at: float | None
    created_at: float
    user: str
    host: str
    # `3/8` for shard 3 of a job's 8 shards, `8 shards` for their reduction; empty for other runs.
    shard: str = ""
    # The params that tell the run's instance apart (with its upstreams'), as recorded.
    labels: dict[str, Any] = field(default_factory=dict)
    # A shard run's group (its job instance's shards, `_GROUP_SQL`); empty for other runs.
    group: str = ""
    # For the line that stands for its shard group (its newest shard run): the group's progress.
    progress: ShardProgress | None = None

    @property
    def label(self) -> str:
        return instance_label(self.job, self.labels)

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


def _json_path(key: str) -> str:
    return "$" + "".join(f'."{part}"' for part in key.split("."))


# The shard group of a shard run (NULL for other runs): experiment, job, instance split, count.
_GROUP_SQL = ("CASE WHEN json_extract({r}.labels, '$.shard') IS NOT NULL THEN {r}.experiment_id || char(31) || "
              "{r}.job || char(31) || json_extract({r}.config, '$.shard.of') || char(31) || "
              "json_extract({r}.config, '$.shard.count') END")
# Kept: every run that is no shard (labels are NULL for most, so no config is read for them), the
# newest run of each shard group, and every run of an expanded group.
_COLLAPSED_SQL = (
    "(run.labels IS NULL OR json_extract(run.labels, '$.shard') IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM run newer WHERE newer.experiment_id = run.experiment_id AND newer.job = run.job "
    "AND (newer.created_at > run.created_at OR newer.created_at = run.created_at AND newer.id > run.id) "
    "AND newer.labels IS NOT NULL "
    f"AND {_GROUP_SQL.format(r='newer')} = {_GROUP_SQL.format(r='run')})"
    " OR {expanded})"
)


def _where(query: RunQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if query.shard_groups:
        expanded = sorted(query.expanded)
        clauses.append(_COLLAPSED_SQL.format(
            expanded=f"{_GROUP_SQL.format(r='run')} IN ({','.join('?' * len(expanded))})" if expanded else "0"))
        args.extend(expanded)
    for name, values in query.fields.items():
        column = _FIELDS[name]
        clauses.append(f"{column} IN ({','.join('?' * len(values))})")
        args.extend(values)
    for cond in query.params:
        if cond.op not in OPERATORS:
            raise ValueError(f"unknown operator {cond.op!r}")
        clauses.append(f"json_extract(run.params, ?) {'<>' if cond.op == '!=' else cond.op} ?")
        args.extend([_json_path(cond.key), cond.value])
    for word in query.words:
        low = word.lower()
        # An id prefix is a range on the primary key; names match anywhere.
        clauses.append("((run.id >= ? AND run.id < ?) OR run.job LIKE ? OR experiment.name LIKE ?)")
        args.extend([low, low + "\uffff", f"%{word}%", f"%{word}%"])
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


class QueryStopped(Exception):
    """A query was abandoned because its caller no longer wanted the answer."""


@contextlib.contextmanager
def stoppable(store: Store, stop: Callable[[], bool] | None) -> Iterator[None]:
    """Abandon the statements run inside when `stop()` turns true (checked every 500 SQLite steps).

    A count over a param filter reads every run; when the user has typed the
    next filter meanwhile, finishing it would only take the CPU from the new one.
    """
    if stop is None:
        yield
        return
    connection = store.db.connection()
    connection.set_progress_handler(lambda: 1 if stop() else 0, 500)
    try:
        yield
    except (sqlite3.OperationalError, peewee.OperationalError, StoreError) as exc:
        if "interrupted" in str(exc) and stop():
            raise QueryStopped() from None
        raise
    finally:
        connection.set_progress_handler(None, 0)


def count_runs(store: Store, query: RunQuery, stop: Callable[[], bool] | None = None) -> int:
    """How many runs match the query's filters (QueryStopped if `stop()` turns true first)."""
    where, args = _where(query)
    join = "JOIN experiment ON experiment.id = run.experiment_id" if _needs_experiment(query) else ""
    sql = f"SELECT count(*) FROM run {join} {where}"
    with stoppable(store, stop):
        return int(store.db.execute_sql(sql, tuple(args)).fetchone()[0])


def _metric_key_id(store: Store, name: str | None) -> int | None:
    if name is None:
        return None
    row = store.db.execute_sql("SELECT id FROM metric_key WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


# The key id is an integer read from the store, written into the SQL so that
# the expression can appear in ORDER BY twice without counting placeholders.
_METRIC_SQL = "(SELECT last FROM metric_summary WHERE run_id = run.id AND key_id = {:d})"
_GPUS_SQL = "(SELECT gpus FROM attempt WHERE attempt.run_id = run.id ORDER BY number DESC LIMIT 1)"


def _needs_experiment(query: RunQuery) -> bool:
    return "experiment" in query.fields or bool(query.words) or query.sort == "experiment"


def page_run_ids(store: Store, query: RunQuery, offset: int, limit: int,
                 stop: Callable[[], bool] | None = None) -> list[str]:
    """Ids of `limit` runs from position `offset` of the query's order.

    Only what the order needs is computed here: SQLite evaluates every
    selected column of every matching row before it sorts, so the columns of
    the rows on screen are read afterwards, for those rows alone.
    """
    where, args = _where(query)
    order, nullable = _SORT_SQL[query.sort]
    if query.sort == "metric":
        key_id = _metric_key_id(store, query.metric)
        order = _METRIC_SQL.format(key_id) if key_id is not None else "NULL"
    elif query.sort == "gpu":
        order = _GPUS_SQL
    direction = "DESC" if query.descending else "ASC"
    # NULLs (no metric, not finished) go last whichever way the order runs.
    nulls_last = f"{order} IS NULL, " if nullable else ""
    tie = "" if query.sort == "started" else f", run.created_at {direction}"
    join = "JOIN experiment ON experiment.id = run.experiment_id" if _needs_experiment(query) else ""
    sql = (f"SELECT run.id FROM run {join} {where} ORDER BY {nulls_last}{order} {direction}{tie} "
           "LIMIT ? OFFSET ?")
    with stoppable(store, stop):
        return [r[0] for r in store.db.execute_sql(sql, (*args, int(limit), int(offset))).fetchall()]


def runs_by_id(store: Store, run_ids: list[str], metric: str | None = None,
               grouped: bool = False) -> list[RunListRow]:
    """The list rows of these runs, in the order given; `metric` names the metric column.

    `grouped`: the first line of each shard group carries the group's progress.
    """
    if not run_ids:
        return []
    key_id = _metric_key_id(store, metric)
    metric_sql = _METRIC_SQL.format(key_id) if key_id is not None else "NULL"
    sql = (
        f"SELECT run.id, experiment.name, run.job, run.status, run.params, {metric_sql}, {_GPUS_SQL}, "
        "run.started_at, run.ended_at, run.created_at, run.user, run.host, "
        "json_extract(run.config, '$.shard.index'), json_extract(run.config, '$.shard.count'), "
        f"json_extract(run.config, '$.reduction.shards'), run.labels, {_GROUP_SQL.format(r='run')} "
        "FROM run JOIN experiment ON experiment.id = run.experiment_id "
        f"WHERE run.id IN ({','.join('?' * len(run_ids))})"
    )
    found = {}
    for rid, exp, job, status, params, value, gpus, started, ended, created, user, host, index, count, reduced, \
            labels, group in store.db.execute_sql(sql, tuple(run_ids)).fetchall():
        shard = f"{index}/{count}" if index is not None else f"{reduced} shards" if reduced is not None else ""
        found[rid] = RunListRow(rid, exp, job, status, json.loads(params), value,
                                json.loads(gpus) if gpus else [], started, ended, created, user, host, shard,
                                json.loads(labels) if labels else {}, group or "")
    rows = [found[rid] for rid in run_ids if rid in found]
    if grouped:
        # The first line of each shard group (the only one of a collapsed group) carries its progress.
        firsts = {}
        for position, row in enumerate(rows):
            if row.group and row.group not in firsts:
                firsts[row.group] = position
        for group, position in firsts.items():
            _, _, of, count = group.split("\x1f")
            config = {"shard": {"of": of, "count": int(count)}}
            rows[position] = replace(rows[position],
                                     progress=shard_progress(store, rows[position].experiment, rows[position].job,
                                                             config))
    return rows


def page_runs(store: Store, query: RunQuery, offset: int, limit: int,
              stop: Callable[[], bool] | None = None) -> list[RunListRow]:
    """`limit` runs from position `offset` of the query's order (QueryStopped as count_runs)."""
    return runs_by_id(store, page_run_ids(store, query, offset, limit, stop), query.metric, query.shard_groups)


def metric_key_names(store: Store, include_system: bool = False) -> list[str]:
    """Every metric key logged in the store, in the order they first appeared."""
    rows = store.db.execute_sql("SELECT name FROM metric_key ORDER BY id").fetchall()
    return [name for (name,) in rows if include_system or not name.startswith("sys/")]


@dataclass(frozen=True)
class ExperimentGroup:
    """Runs of one experiment, counted by status."""

    experiment: str
    runs: int
    by_status: dict[str, int]
    last_started: float | None


def experiment_groups(store: Store, query: RunQuery) -> list[ExperimentGroup]:
    """The runs matching the query, grouped by experiment (most recently active first)."""
    # Every run counts in its experiment's line, shards too.
    where, args = _where(replace(query, shard_groups=False))
    rows = store.db.execute_sql(
        "SELECT experiment.name, run.status, count(*), max(COALESCE(run.started_at, run.created_at)) "
        f"FROM run JOIN experiment ON experiment.id = run.experiment_id {where} "
        "GROUP BY experiment.name, run.status",
        tuple(args),
    ).fetchall()
    groups: dict[str, ExperimentGroup] = {}
    for name, status, count, last in rows:
        group = groups.setdefault(name, ExperimentGroup(name, 0, {}, None))
        group.by_status[status] = count
        latest = max(filter(None, (group.last_started, last)), default=None)
        groups[name] = ExperimentGroup(name, group.runs + count, group.by_status, latest)
    return sorted(groups.values(), key=lambda g: -(g.last_started or 0))


class ChangeWatch:
    """Tells cheaply whether anyone committed to the store since the last look.

    `PRAGMA data_version` changes when another connection commits (and the
    hit log's size when a cached run counts its hits); values are
    only comparable on one connection, and each reading thread has its own, so
    the last value is kept per connection. A connection seen for the first
    time counts as a change: at worst one extra refresh, never a missed one.
    """

    def __init__(self) -> None:
        self._seen: dict[int, tuple[int, tuple[int, int] | None]] = {}

    def changed(self, store: Store) -> bool:
        connection = store.db.connection()
        # Cache hits of all-cached runs reach the hit log, not the database.
        state = int(connection.execute("PRAGMA data_version").fetchone()[0]), log_stamp(store.root)
        previous = self._seen.get(id(connection))
        self._seen[id(connection)] = state
        return previous != state
