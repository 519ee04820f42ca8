"""Sharded jobs in the plan: each instance of a job with `shards:` becomes its shards plus their reduction.

Shard `i` of `n` is an ordinary instance of the job whose identity (config
hash) holds `{index, count}` and, with `shards: {files: GLOB}`, the files that
are its share; it is cached on its own, with its own closure. The
reduction keeps the instance's key, so the downstream jobs that consume the
instance consume the reduced values; its upstreams are the shards, and it
runs no process (the scheduler computes it, `scheduler/reduction.py`).
Executor-neutral: the shards are scheduled like any other instance.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mayuri.errors import ExperimentError
from mayuri.experiment.expand import JobInstance, base_hash
from mayuri.experiment.spec import JobSpec
from mayuri.experiment.upstream_positions import SHARDS
from mayuri.sharding import assign_files

SHARD = "shard"
REDUCTION = "reduction"


def shard_part(instance: JobInstance) -> dict[str, Any] | None:
    """`{index, count[, files]}` of a shard instance; None for any other."""
    part = instance.config.get(SHARD)
    return part if isinstance(part, dict) else None


def is_reduction(instance: JobInstance) -> bool:
    """Whether the instance is the reduction of a sharded job (no process: the scheduler computes it)."""
    return REDUCTION in instance.config


def shard_key(key: str, index: int) -> str:
    """`eval[shard=3]`, or `eval[lr=0.1,shard=3]` for an instance that has a label."""
    return f"{key[:-1]},shard={index}]" if key.endswith("]") else f"{key}[shard={index}]"


def _files(job: JobSpec, pattern: str, root: Path) -> list[str]:
    found = sorted(
        Path(match).as_posix() for match in glob.glob(pattern, root_dir=root, recursive=True)
        if (root / match).is_file()
    )
    if not found:
        where = job.at("shards")
        raise ExperimentError(
            f"job '{job.name}': shards.files {pattern!r} matches no file.",
            path=where.path, line=where.line, column=where.column,
            hint=f"The glob is relative to the project folder ({root}); check the path, or use a count.",
        )
    return found


def _expand_one(instance: JobInstance, root: Path, listed: dict[str, list[str]]) -> list[JobInstance]:
    job = instance.job
    assert job.shards is not None
    count, pattern = job.shards.count, job.shards.files
    shares: list[list[str]] | None = None
    if pattern is not None:
        if pattern not in listed:
            listed[pattern] = _files(job, pattern, root)
        shares = assign_files(listed[pattern], count)
    shards = []
    for index in range(count):
        # `of` names the group of shards (the instance they split): `show` and the dashboard gather them by it.
        part: dict[str, Any] = {"index": index, "count": count, "of": instance.config_hash}
        if shares is not None:
            part["files"] = shares[index]
        config = {**instance.config, SHARD: part}
        shards.append(dataclasses.replace(instance, key=shard_key(instance.key, index), config=config,
                                          dims={**instance.dims, "shard": index}, base_hash=base_hash(config)))
    rules = [{"name": r.name, "kind": r.kind, "weight": r.weight, "metric": r.metric} for r in job.reduce]
    config = {**instance.config,
              REDUCTION: {"shards": count, "files": pattern, "reduce": rules, "of": instance.config_hash}}
    reduction = dataclasses.replace(
        instance, config=config, base_hash=base_hash(config),
        upstream={job.name: tuple(s.key for s in shards)}, bindings=(), positions={job.name: SHARDS},
    )
    return [*shards, reduction]


def _check_uses(instances: Sequence[JobInstance]) -> None:
    """A sharded job's result is its reduced values: `expect` and downstream jobs may use only those."""
    sharded = {inst.name: inst.job for inst in instances if inst.job.shards is not None}
    for job in {inst.name: inst.job for inst in instances}.values():
        if job.name in sharded:
            reduced = [r.name for r in job.reduce]
            for name in job.expect:
                if name.split(".")[0] not in reduced:
                    raise ExperimentError(
                        f"test '{job.name}': expect.{name} judges the reduced values of its shards, and "
                        f"reduce has no '{name}'.", path=job.where.path, line=job.where.line,
                        column=job.where.column, hint=f"Add `{name}: mean` (or another reduction) to `reduce`.")
        for dep in job.depends_on:
            upstream = sharded.get(dep.upstream)
            if upstream is None:
                continue
            reduced = [r.name for r in upstream.reduce]
            for output in dep.mapping:
                if output not in reduced:
                    raise ExperimentError(
                        f"job '{job.name}' uses output '{output}' of sharded job '{upstream.name}', whose result "
                        f"holds only its reduced values ({', '.join(reduced) or 'none'}).",
                        path=dep.where.path, line=dep.where.line, column=dep.where.column,
                        hint=f"Add `{output}: concat` (or another reduction) to `reduce` of '{upstream.name}'.")


def shard_instances(instances: Sequence[JobInstance], root: Path) -> list[JobInstance]:
    """The plan's instances with every instance of a sharded job replaced by its shards and their reduction."""
    if not any(inst.job.shards is not None for inst in instances):
        return list(instances)
    _check_uses(instances)
    listed: dict[str, list[str]] = {}
    result: list[JobInstance] = []
    for inst in instances:
        result.extend(_expand_one(inst, root, listed) if inst.job.shards is not None else [inst])
    return result
