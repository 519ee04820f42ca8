"""Gathering what `mayuri show` and `mayuri diff` display about runs (reads only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.experiment.overrides import flat_params
from mayuri.run_contract import log_file
from mayuri.store import Store
from mayuri.store.artifact_queries import ArtifactRow, artifacts_of
from mayuri.store.coverage_queries import closure_coverage
from mayuri.store.metric_queries import Summary, metric_summaries
from mayuri.store.queries import (
    AttemptRow,
    LineageEdge,
    RunRow,
    attempts_of,
    closures,
    get_run,
    lineage_of,
    outputs_of,
)
from mayuri.store.records import ClosureRow
from mayuri.store.shard_queries import ShardProgress, shard_progress
from mayuri.store.text_diff_queries import FileDiff, file_diffs


@dataclass
class RunDetail:
    """Everything known about one run."""

    run: RunRow
    attempts: list[AttemptRow]
    closure: list[ClosureRow]
    outputs: dict[str, Any]
    upstream: list[LineageEdge]
    downstream: list[LineageEdge]
    metrics: dict[str, Summary]
    artifacts: list[ArtifactRow]
    # The shards of a sharded job, for one of its shards or its reduction (None for any other run).
    shards: ShardProgress | None = None
    # How the closure was learned and the untracked reads (see store/coverage_queries.py).
    coverage: dict[str, Any] = field(default_factory=dict)

    @property
    def logs(self) -> dict[str, str]:
        folder = Path(self.run.run_dir)
        return {stream: str(log_file(folder, stream)) for stream in ("stdout", "stderr")}

    @property
    def script_params(self) -> dict[str, Any]:
        """What the job gave `mayuri.init(params=...)` (kept in its run folder), or {}."""
        from mayuri.job import SCRIPT_PARAMS_FILE

        try:
            with open(Path(self.run.run_dir) / SCRIPT_PARAMS_FILE, encoding="utf-8") as handle:
                loaded = json.load(handle)
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def to_json(self) -> dict[str, Any]:
        data = self.run.to_json()
        data.update(
            {
                "script_params": self.script_params,
                "config": self.run.config,
                "config_hash": self.run.config_hash,
                "upstream_fingerprints": self.run.upstream,
                "environment": self.run.environment,
                "error": self.run.error,
                "attempts": [a.__dict__ for a in self.attempts],
                "closure": [c.__dict__ for c in self.closure],
                "outputs": self.outputs,
                "lineage": {
                    "upstream": [e.__dict__ for e in self.upstream],
                    "downstream": [e.__dict__ for e in self.downstream],
                },
                "logs": self.logs,
                "metrics": {key: summary.__dict__ for key, summary in self.metrics.items()},
                "artifacts": [a.__dict__ for a in self.artifacts],
                "closure_coverage": self.coverage,
            }
        )
        if self.shards is not None:
            data["shards"] = {"count": self.shards.count, "done": self.shards.done,
                              "latest": {str(i): {"run_id": r, "status": s}
                                         for i, (r, s) in sorted(self.shards.latest.items())}}
        return data


def run_detail(store: Store, ref: str) -> RunDetail:
    """The run `ref` (an id or a unique prefix) with its attempts, closure, outputs and lineage."""
    run = get_run(store, ref)
    up, down = lineage_of(store, run.id)
    closure = sorted(closures(store, [run.id]).get(run.id, []), key=lambda c: (c.role, c.path))
    metrics = metric_summaries(store, [run.id]).get(run.id, {})
    return RunDetail(run, attempts_of(store, run.id), closure, outputs_of(store, run.id), up, down,
                     metrics, artifacts_of(store, run.id), shard_progress(store, run.experiment, run.job, run.config),
                     closure_coverage(store, run.id))


@dataclass
class WhyEntry:
    role: str
    path: str
    kind: str
    recorded: str
    now: str

    @property
    def same(self) -> bool:
        return self.recorded == self.now


@dataclass
class WhyBreakdown:
    """The parts of a run's fingerprint, each with its value then and now."""

    fingerprint: str | None
    config_hash: str
    config: dict[str, Any]
    upstream: dict[str, list[str]]
    closure: list[WhyEntry]
    env_key: dict[str, Any]
    env_key_now: dict[str, Any]
    recomputed: str
    coverage: dict[str, Any] = field(default_factory=dict)
    # The params that counted (None: all of them) and their values.
    params_used: list[str] | None = None
    params_counted: dict[str, Any] | None = None
    # The names of the upstreams the key holds by position (`#0` -> `prep`); empty for runs keyed by name.
    upstream_names: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "recomputed_now": self.recomputed,
            "config_hash": self.config_hash,
            "config": self.config,
            "params_used": self.params_used,
            "params_counted": self.params_counted,
            "upstream": self.upstream,
            "upstream_names": self.upstream_names,
            "closure": [dict(e.__dict__, same=e.same) for e in self.closure],
            "env_key": self.env_key,
            "env_key_now": self.env_key_now,
            "tracer": self.coverage.get("tracer"),
            "untracked": self.coverage.get("untracked", []),
        }


def why(store: Store, root: Path, key_env: tuple[str, ...], detail: RunDetail) -> WhyBreakdown:
    """The full fingerprint breakdown of a run, compared with the project as it is now."""
    from mayuri.environment import current_key_parts, key_parts
    from mayuri.experiment.expand import base_hash
    from mayuri.experiment.upstream_positions import (
        SHARDS,
        UPSTREAM_KEY,
        config_positions,
        name_free,
    )
    from mayuri.filestate import current_digests
    from mayuri.fingerprint import config_key, fingerprint, used_key
    from mayuri.params_used import used_values
    from mayuri.upstream_reads import READS_KEY

    run = detail.run
    now = current_digests(store, root, [(c.path, c.kind) for c in detail.closure])
    entries = [WhyEntry(c.role, c.path, c.kind, c.sha512, now[(c.path, c.kind)][0]) for c in detail.closure]
    env_then = key_parts(key_env, run.environment)
    env_now = current_key_parts(key_env, run.environment, root) if key_env else {}
    current = [ClosureRow(c.role, c.path, c.kind, now[(c.path, c.kind)][0], c.size) for c in detail.closure]
    # What the key holds: upstreams named by their position in depends_on (runs recorded before: by name).
    where = config_positions(run.config)
    hashed = name_free({k: v for k, v in run.config.items() if k != UPSTREAM_KEY}, where)
    params = hashed.get("params", {})
    counted = used_values(run.params_used, params)
    reads = [tuple(read) for read in detail.coverage.get(READS_KEY) or ()]
    upstream = run.upstream
    # Runs recorded since the params used count are keyed on those params; older ones on their whole config.
    key = config_key(run.base_hash or "", used_key(run.params_used, params)) if run.fingerprint_version \
        else run.config_hash
    if (run.fingerprint_version or 0) < 3:
        # Its fingerprint was made with its upstreams' names (migration 0018 may have placed its keys since).
        names = {**{position: name for name, position in where.items()}, SHARDS: run.job}
        upstream = {names.get(k, k): v for k, v in run.upstream.items()}
        reads = [(names.get(read[0], read[0]), *read[1:]) for read in reads]
        if run.fingerprint_version:
            key = config_key(base_hash(run.config, by_name=True),
                             used_key(run.params_used, run.config.get("params", {})))
    return WhyBreakdown(
        fingerprint=run.fingerprint,
        config_hash=run.config_hash,
        config=hashed,
        upstream=run.upstream,
        closure=entries,
        env_key=env_then,
        env_key_now=env_now,
        recomputed=fingerprint(key, upstream, current, env_now, reads),
        coverage=detail.coverage,
        params_used=run.params_used,
        params_counted=counted["*"] if run.params_used is None else counted["used"],
        upstream_names={position: name for name, position in where.items()},
    )


@dataclass
class RunDiff:
    """What differs between two runs: params, config, closure files, environment, outputs, metrics."""

    left: RunRow
    right: RunRow
    params: list[tuple[str, Any, Any]]
    closure: list[tuple[str, str | None, str | None]]
    environment: list[tuple[str, Any, Any]]
    outputs: list[tuple[str, Any, Any]]
    metrics: list[tuple[str, Any, Any]]
    config: list[str]
    # The closure files that differ, with a unified diff when their text was kept.
    files: list[FileDiff] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def rows(items: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
            return [{"name": n, "left": a, "right": b} for n, a, b in items]

        return {
            "left": self.left.id, "right": self.right.id,
            "params": rows(self.params), "config": self.config,
            "closure": [{"path": p, "left": a, "right": b} for p, a, b in self.closure],
            "environment": rows(self.environment), "outputs": rows(self.outputs), "metrics": rows(self.metrics),
            "files": [{"path": f.path, "left": f.left, "right": f.right, "added": f.added, "removed": f.removed,
                       "diff": "".join(f.lines), "note": f.note} for f in self.files],
        }


def _differences(left: dict[str, Any], right: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    a, b = flat_params(left), flat_params(right)
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def diff_runs(store: Store, left_ref: str, right_ref: str, with_text: bool = True) -> RunDiff:
    """Params, closure (with text diffs unless `with_text` is false), environment, output and metric
    differences of two runs."""
    from mayuri.fingerprint import config_changes

    left, right = run_detail(store, left_ref), run_detail(store, right_ref)
    files_left = {(c.path + ("/" if c.kind == "listing" else "")): c.sha512 for c in left.closure}
    files_right = {(c.path + ("/" if c.kind == "listing" else "")): c.sha512 for c in right.closure}
    closure = [
        (path, files_left.get(path), files_right.get(path))
        for path in sorted(files_left.keys() | files_right.keys())
        if files_left.get(path) != files_right.get(path)
    ]
    metrics_left = {k: s.last for k, s in left.metrics.items()}
    metrics_right = {k: s.last for k, s in right.metrics.items()}
    env_left = {k: v for k, v in left.run.environment.items() if k != "host"}
    env_right = {k: v for k, v in right.run.environment.items() if k != "host"}
    return RunDiff(
        left=left.run,
        right=right.run,
        params=_differences(left.run.params, right.run.params),
        closure=closure,
        environment=_differences(env_left, env_right),
        outputs=_differences(left.outputs, right.outputs),
        metrics=[(k, metrics_left.get(k), metrics_right.get(k))
                 for k in sorted(metrics_left.keys() | metrics_right.keys())
                 if metrics_left.get(k) != metrics_right.get(k)],
        config=[c for c in config_changes(left.run.config, right.run.config) if not c.startswith("param ")],
        files=file_diffs(store, left.run.id, right.run.id, with_text=with_text),
    )
