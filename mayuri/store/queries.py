"""Read-only queries over the store, named for what callers need.

The CLI, the planner and the dashboard read the store only through these
functions; none of them writes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mayuri.errors import RunNotFound
from mayuri.experiment.interpolate import instance_label
from mayuri.store.db import Store
from mayuri.store.hit_log import pending_hits, with_pending
from mayuri.store.records import ClosureRow

_RUN_COLUMNS = (
    "run.id, experiment.name, run.job, run.kind, run.status, run.fingerprint, run.config_hash, "
    "run.params, run.config, run.upstream, run.environment, run.reason, run.error, run.exit_code, "
    "run.created_at, run.started_at, run.ended_at, run.user, run.host, run.run_dir, run.hits, "
    "run.last_used_at, run.pinned, run.source, run.overrides, "
    "run.base_hash, run.params_used, run.used_key, run.result_key, run.labels, run.fingerprint_version, "
    "(SELECT attempt.gpus FROM attempt WHERE attempt.run_id = run.id ORDER BY attempt.number DESC LIMIT 1), "
    "json_extract(run.closure_info, '$.upstream_reads'), "
    # Where the latest attempt ran when an engine placed it on another machine (`ray:NODE`), else NULL.
    "(SELECT a.executor || ':' || COALESCE(a.node, '?') FROM attempt a WHERE a.run_id = run.id "
    "AND a.executor IS NOT NULL AND a.executor <> 'local' ORDER BY a.number DESC LIMIT 1)"
)
_RUN_FROM = "FROM run JOIN experiment ON experiment.id = run.experiment_id"


@dataclass
class RunRow:
    """One run as the CLI and the dashboard show it."""

    id: str
    experiment: str
    job: str
    kind: str
    status: str
    fingerprint: str | None
    config_hash: str
    params: dict[str, Any]
    config: dict[str, Any]
    upstream: dict[str, list[str]]
    environment: dict[str, Any]
    reason: str | None
    error: str | None
    exit_code: int | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    user: str
    host: str
    run_dir: str
    hits: int
    last_used_at: float | None
    pinned: bool
    # The experiment file and the overrides of the `mayuri run` that made it (None: not recorded).
    source: str | None = None
    overrides: list[str] = field(default_factory=list)
    # The GPUs of the run's latest attempt.
    gpus: list[str] = field(default_factory=list)
    # The cache's keys (migration 0009): config without params, the params used (None: all),
    # their values' hash, the results' content hash; and the params that name the instance.
    base_hash: str | None = None
    used_key: str | None = None
    result_key: str | None = None
    # Kept as recorded (JSON text) and read when asked: the warm cache check never needs them.
    params_used_text: str | None = None
    labels_text: str | None = None
    fingerprint_version: int | None = None
    # The upstream files the run read, when it counted only those (mayuri/upstream_reads.py), as JSON.
    upstream_reads_text: str | None = None
    # `ray:NODE` when its latest attempt ran on an engine's node; None: on `host`.
    ran_on: str | None = None

    @property
    def where(self) -> str:
        """Where the run ran: an engine's node (`ray:NODE`), else the host."""
        return self.ran_on or self.host

    @property
    def params_used(self) -> list[str] | None:
        """The dotted names of the params the run used (None: all of them)."""
        return json.loads(self.params_used_text) if self.params_used_text else None

    @property
    def labels(self) -> dict[str, Any]:
        """The params that tell the run's instance apart, with its upstreams' (`train.lr`)."""
        return json.loads(self.labels_text) if self.labels_text else {}

    @property
    def label(self) -> str:
        """The job named by the params that tell its instances apart: `train[lr=0.1,seed=1]`."""
        return instance_label(self.job, self.labels)

    @property
    def results(self) -> str:
        """What this run gives its downstream jobs, by content (its fingerprint when not recorded)."""
        return self.result_key or self.fingerprint or ""

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def to_json(self) -> dict[str, Any]:
        """The stable `--json` shape of a run."""
        return {
            "id": self.id,
            "experiment": self.experiment,
            "job": self.job,
            "kind": self.kind,
            "status": self.status,
            "params": self.params,
            "fingerprint": self.fingerprint,
            "started": self.started_at,
            "ended": self.ended_at,
            "duration": self.duration,
            "exit_code": self.exit_code,
            "user": self.user,
            "host": self.host,
            "reason": self.reason,
            "run_dir": self.run_dir,
            "hits": self.hits,
            "pinned": self.pinned,
            "gpus": self.gpus,
            "source": self.source,
            "overrides": self.overrides,
            # The instance's name and the params in it (with its upstreams', `train.lr`).
            "label": self.label,
            "labels": self.labels,
            "params_used": self.params_used,
            "where": self.where,
        }


def _row(values: tuple[Any, ...], pending: dict[str, tuple[int, float]]) -> RunRow:
    (rid, exp, job, kind, status, fp, ch, params, config, upstream, env, reason, error, code,
     created, started, ended, user, host, run_dir, hits, last_used, pinned, source, overrides,
     base, used, used_key, result_key, labels, version, gpus, reads, ran_on) = values
    hits, last_used = with_pending(rid, hits, last_used, pending)
    return RunRow(
        rid, exp, job, kind, status, fp, ch, json.loads(params), json.loads(config),
        json.loads(upstream), json.loads(env), reason, error, code, created, started, ended,
        user, host, run_dir, hits, last_used, bool(pinned), source, json.loads(overrides) if overrides else [],
        json.loads(gpus) if gpus else [], base, used_key, result_key, used, labels, version, reads, ran_on,
    )


def _select(store: Store, where: str = "", args: tuple[Any, ...] = (), tail: str = "",
            logged_hits: bool = True, tail_args: tuple[Any, ...] = ()) -> list[RunRow]:
    """RunRows; their hits include the hit log's unless `logged_hits` is False (then the rows' own)."""
    sql = f"SELECT {_RUN_COLUMNS} {_RUN_FROM} {where} {tail}"
    rows = store.db.execute_sql(sql, (*args, *tail_args)).fetchall()
    pending = pending_hits(store.root) if rows and logged_hits else {}
    return [_row(r, pending) for r in rows]


@dataclass
class RunFilter:
    """Filters of `mayuri runs`."""

    experiment: str | None = None
    job: str | None = None
    status: str | None = None
    user: str | None = None
    limit: int | None = 50
    params: dict[str, Any] = field(default_factory=dict)


def list_runs(store: Store, filters: RunFilter | None = None) -> list[RunRow]:
    """Runs, newest first, narrowed by `filters`."""
    f = filters or RunFilter()
    clauses, args = [], []
    for column, value in (("experiment.name", f.experiment), ("run.job", f.job),
                          ("run.status", f.status), ("run.user", f.user)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    for key, value in f.params.items():
        # A downstream run also answers to its upstreams' params (`train.lr`), kept in its labels.
        clauses.append("(json_extract(run.params, ?) = ? OR json_extract(run.labels, ?) = ?)")
        args.extend([f"$.{key}", value, '$."' + key.replace('"', "") + '"', value])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    tail = "ORDER BY run.created_at DESC" + (f" LIMIT {int(f.limit)}" if f.limit else "")
    return _select(store, where, tuple(args), tail)


def get_run(store: Store, ref: str) -> RunRow:
    """The run whose id is `ref` or starts with it (like git); an error if none or several."""
    ref = ref.strip().lower()
    if not ref or any(c not in "0123456789abcdef" for c in ref):
        raise RunNotFound(f"'{ref}' is not a run id (run ids are hexadecimal).",
                          hint="List runs with `mayuri runs`.")
    # A range on the primary key uses its index, unlike LIKE.
    rows = _select(store, "WHERE run.id >= ? AND run.id < ?", (ref, ref + "g"), "LIMIT 6")
    if not rows:
        raise RunNotFound(f"no run matches '{ref}'.", hint="List runs with `mayuri runs`.")
    if len(rows) > 1:
        ids = ", ".join(r.id[: max(len(ref) + 2, 8)] for r in rows[:5])
        raise RunNotFound(f"'{ref}' matches several runs ({ids}).", hint="Give more characters of the id.")
    return rows[0]


def cache_candidates(
    store: Store, experiment: str, job: str, base_hash: str, used_keys: Sequence[str],
    upstream_jsons: Sequence[str], limit: int = 20,
) -> list[RunRow]:
    """Succeeded runs, of any job, with the same config but params, these used params and upstream results
    (any of `upstream_jsons`).

    Newest first, those of the same experiment and job before others (hits: the rows' own).
    """
    marks = ", ".join("?" * len(used_keys))
    upstream_marks = ", ".join("?" * len(upstream_jsons))
    return _select(
        store,
        f"WHERE run.base_hash = ? AND run.used_key IN ({marks}) AND run.upstream IN ({upstream_marks}) "
        "AND run.status = 'succeeded' AND run.fingerprint IS NOT NULL",
        (base_hash, *used_keys, *upstream_jsons),
        f"ORDER BY (experiment.name = ? AND run.job = ?) DESC, run.created_at DESC LIMIT {int(limit)}",
        # The check never looks at hit counts; reading the hit log would cost every warm check.
        logged_hits=False,
        tail_args=(experiment, job),
    )


def used_param_sets(store: Store, base_hashes: Iterable[str]) -> dict[str, list[list[str] | None]]:
    """For each config (without params), the distinct sets of params its succeeded runs used (None: all)."""
    found: dict[str, list[list[str] | None]] = defaultdict(list)
    rows = store.select_in(
        "SELECT DISTINCT base_hash, params_used FROM run WHERE base_hash IN ({marks}) "
        "AND status = 'succeeded' AND fingerprint IS NOT NULL",
        list(base_hashes),
    )
    for base, used in rows:
        found[base].append(json.loads(used) if used is not None else None)
    return found


def runs_of_command(store: Store, base_hash: str, limit: int = 1) -> list[RunRow]:
    """The newest runs with the same config but params, of any job (the nearest earlier run of a new name)."""
    return _select(
        store,
        "WHERE run.base_hash = ? AND run.status IN ('succeeded', 'failed')",
        (base_hash,),
        f"ORDER BY run.status = 'succeeded' DESC, run.created_at DESC LIMIT {int(limit)}",
    )


def reusable_among(store: Store, run_ids: Iterable[str]) -> set[str]:
    """Those of `run_ids` that the cache may still reuse (succeeded, fingerprinted, not collected by gc)."""
    rows = store.select_in(
        "SELECT id FROM run WHERE id IN ({marks}) AND status = 'succeeded' AND fingerprint IS NOT NULL",
        list(run_ids),
    )
    return {row[0] for row in rows}


def latest_runs(store: Store, experiment: str, job: str, limit: int = 1) -> list[RunRow]:
    """The newest runs of a job whatever their config (the "nearest earlier run")."""
    return _select(
        store,
        "WHERE experiment.name = ? AND run.job = ? AND run.status IN ('succeeded', 'failed')",
        (experiment, job),
        f"ORDER BY run.status = 'succeeded' DESC, run.created_at DESC LIMIT {int(limit)}",
    )


def closures(store: Store, run_ids: Iterable[str]) -> dict[str, list[ClosureRow]]:
    """The closure entries of each run."""
    result: dict[str, list[ClosureRow]] = defaultdict(list)
    rows = store.select_in(
        "SELECT closure_entry.run_id, closure_entry.role, file.path, file.kind, file.sha512, file.size "
        "FROM closure_entry JOIN file ON file.id = closure_entry.file_id WHERE closure_entry.run_id IN ({marks})",
        list(run_ids),
    )
    for run_id, role, path, kind, sha, size in rows:
        result[run_id].append(ClosureRow(role, path, kind, sha, size))
    return result


def run_dirs(store: Store, run_ids: Iterable[str]) -> dict[str, str]:
    """The folder of each of these runs."""
    return dict(store.select_in("SELECT id, run_dir FROM run WHERE id IN ({marks})", list(run_ids)))


def upstream_parents(store: Store, run_id: str) -> dict[str, tuple[str, str]]:
    """A run's lineage parents by the name that links them (`prep`, `train[1]`): (run id, run folder)."""
    rows = store.db.execute_sql("SELECT lineage.name, run.id, run.run_dir FROM lineage "
                                "JOIN run ON run.id = lineage.parent_id WHERE lineage.child_id = ?", (run_id,))
    return {name: (parent, folder) for name, parent, folder in rows}


def outputs_of(store: Store, run_id: str) -> dict[str, Any]:
    """The outputs a run declared with `mayuri.output`."""
    rows = store.db.execute_sql("SELECT name, value FROM output WHERE run_id = ? ORDER BY name", (run_id,))
    return {name: json.loads(value) for name, value in rows}


@dataclass
class AttemptRow:
    number: int
    status: str
    pid: int | None
    host: str | None
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    signal: int | None
    cause: str | None
    gpus: list[str]
    params: dict[str, Any]
    resumed_from: str | None = None
    resumed_step: int | None = None
    leftovers: int | None = None
    # Which executor ran it, the executor's id for it (a Ray task id), and the node a remote one ran it on.
    executor: str | None = None
    executor_ref: str | None = None
    node: str | None = None

    @property
    def where(self) -> str:
        """Where it ran: `ray:NODE` for an engine's node, else the host."""
        if self.executor and self.executor != "local":
            return f"{self.executor}:{self.node or '?'}"
        return self.host or "-"

    @property
    def note(self) -> str:
        """What else happened to the attempt: where it ran (on a cluster), where it resumed from, leftovers stopped."""
        parts = []
        if self.executor not in (None, "local"):
            parts.append(f"{self.executor} {self.executor_ref or '?'}" + (f" on {self.node}" if self.node else ""))
        if self.resumed_from:
            at = f" at step {self.resumed_step}" if self.resumed_step is not None else ""
            parts.append(f"resumed from run {self.resumed_from[:8]}{at}")
        if self.leftovers:
            parts.append(f"stopped {self.leftovers} leftover process(es)")
        return "; ".join(parts)


def attempts_of(store: Store, run_id: str) -> list[AttemptRow]:
    """A run's attempts in order."""
    rows = store.db.execute_sql(
        "SELECT number, status, pid, host, started_at, ended_at, exit_code, signal, cause, gpus, params, "
        "resumed_from, resumed_step, leftovers, executor, executor_ref, node FROM attempt WHERE run_id = ? "
        "ORDER BY number",
        (run_id,),
    )
    return [AttemptRow(number, status, pid, host, started, ended, code, sig, cause, json.loads(gpus), json.loads(params),
                       *extra)
            for number, status, pid, host, started, ended, code, sig, cause, gpus, params, *extra in rows]


@dataclass
class LineageEdge:
    name: str
    run_id: str
    experiment: str
    job: str
    status: str


def lineage_of(store: Store, run_id: str) -> tuple[list[LineageEdge], list[LineageEdge]]:
    """(upstream runs, downstream runs) one step away."""
    def edges(sql: str) -> list[LineageEdge]:
        return [LineageEdge(*r) for r in store.db.execute_sql(sql, (run_id,))]

    up = edges(
        "SELECT lineage.name, run.id, experiment.name, run.job, run.status FROM lineage "
        "JOIN run ON run.id = lineage.parent_id JOIN experiment ON experiment.id = run.experiment_id "
        "WHERE lineage.child_id = ? ORDER BY lineage.name"
    )
    down = edges(
        "SELECT lineage.name, run.id, experiment.name, run.job, run.status FROM lineage "
        "JOIN run ON run.id = lineage.child_id JOIN experiment ON experiment.id = run.experiment_id "
        "WHERE lineage.parent_id = ? ORDER BY run.created_at"
    )
    return up, down


def stat_cache_rows(store: Store, paths: list[str]) -> dict[str, tuple[int, int, int, int, int, str, int]]:
    """Stat-cache entries for absolute paths: (dev, ino, size, mtime_ns, ctime_ns, sha512, hashed_at_ns)."""
    found: dict[str, tuple[int, int, int, int, int, str, int]] = {}
    rows = store.select_in(
        "SELECT path, dev, ino, size, mtime_ns, ctime_ns, sha512, hashed_at_ns FROM stat_cache WHERE path IN ({marks})",
        paths, size=900,
    )
    for row in rows:
        found[row[0]] = row[1:]
    return found


def closure_stat_rows(
    store: Store, run_id: str, prefix: str, racy_window_ns: int
) -> list[tuple[str, str | None, str | None, int | None, int | None, int | None, int | None, int | None]]:
    """A run's closure joined with the stat cache, for the warm cache check.

    Each row is (path, kind, recorded, mtime_ns, ctime_ns, ino, size, dev).
    `kind` and `recorded` (the digest recorded for the run) are None exactly
    when the entry is a file whose cached digest for `prefix + path` equals the
    recorded one and was not racily clean when hashed (its mtime at least
    `racy_window_ns` before the hashing): such a file is unchanged if its stat
    still matches the cached fields that follow, in that order. Deciding trust
    here spares decoding two digests and a kind per row; the rows are built for
    thousands of files on every warm start, so each value left out counts.
    """
    trusted = "file.kind = 'file' AND sc.sha512 = file.sha512 AND sc.mtime_ns + ?1 <= sc.hashed_at_ns"
    cursor = store.db.execute_sql(
        f"SELECT file.path, CASE WHEN {trusted} THEN NULL ELSE file.kind END, "
        f"CASE WHEN {trusted} THEN NULL ELSE file.sha512 END, "
        "sc.mtime_ns, sc.ctime_ns, sc.ino, sc.size, sc.dev "
        "FROM closure_entry JOIN file ON file.id = closure_entry.file_id "
        # Paths outside the project are kept absolute.
        "LEFT JOIN stat_cache AS sc ON sc.path = "
        "CASE WHEN substr(file.path, 1, 1) = '/' THEN file.path ELSE ?2 || file.path END "
        "WHERE closure_entry.run_id = ?3",
        (racy_window_ns, prefix, run_id),
    )
    return cursor.fetchall()


def closure_snapshot(store: Store, run_id: str) -> tuple[str, bytes, bytes, str] | None:
    """A run's closure snapshot for the warm cache check: (prefix, paths, stats, rest), or None.

    The format is migration 0006's; `mayuri.filestate` reads and writes it.
    """
    row = store.db.execute_sql(
        "SELECT prefix, paths, stats, rest FROM closure_snapshot WHERE run_id = ?", (run_id,)
    ).fetchone()
    if row is None or not isinstance(row[1], bytes) or not isinstance(row[2], bytes):
        return None  # none, or not one this code wrote: the check goes the slow way
    return row[0], row[1], row[2], row[3]
