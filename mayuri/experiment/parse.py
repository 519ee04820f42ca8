"""From YAML nodes to an ExperimentSpec: every key checked, every error with file:line:col.

Handles `extends:` composition and the flow of top-level defaults (params,
resources, retry, env) into every job. Parameter values are not resolved here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mayuri.errors import ExperimentError
from mayuri.experiment import sources
from mayuri.experiment.expectations import parse_expectation
from mayuri.experiment.limits import MAX_PIPELINE_DEPTH
from mayuri.experiment.plain import to_plain, type_name
from mayuri.experiment.shard_keys import parse_reduce, parse_shards
from mayuri.experiment.spec import (
    DEFAULT_OOM_MAX,
    DEFAULT_OOM_WAIT,
    OOM_STRATEGIES,
    Dependency,
    ExperimentSpec,
    JobSpec,
    OomRetry,
    Resources,
    RetryPolicy,
    Where,
)
from mayuri.experiment.yaml_io import load_yaml, position
from mayuri.suggest import did_you_mean
from mayuri.units import parse_duration, parse_size

TOP_KEYS = ("name", "description", "extends", "defaults", "params", "resources", "retry", "env", "executor", "jobs",
            "tests")
JOB_KEYS = (
    "run", "description", "params", "sweep", "depends_on", "resources", "retry", "timeout", "env",
    "cache", "outputs", "expect", "pipeline", "gather", "inputs", "python", "shell", "metrics_from",
    "shards", "reduce", "executor",
)
RESOURCE_KEYS = ("gpus", "gpu_memory", "cpus", "memory", "labels")
RETRY_KEYS = ("oom", "failed", "delay")
OOM_KEYS = ("max", "scale", "floor", "strategy", "wait")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class _Reader:
    """Helpers that raise ExperimentError pointing into one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def where(self, node: Any, key: Any = None) -> Where:
        line, column = position(node, key)
        return Where(self.path, line, column)

    def fail(self, message: str, node: Any, key: Any = None, hint: str | None = None) -> ExperimentError:
        where = self.where(node, key)
        return ExperimentError(message, path=self.path, line=where.line, column=where.column, hint=hint)

    def mapping(self, node: Any, key: str, parent: Any) -> dict[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, dict):
            raise self.fail(f"'{key}' must be a mapping, not a {type_name(node)}.", parent, key)
        return node

    def keys(self, node: dict[str, Any], allowed: tuple[str, ...], context: str) -> None:
        for key in node:
            if not isinstance(key, str):
                raise self.fail(f"keys in {context} must be names, not {type_name(key)} ({key!r}).", node, key)
            if key not in allowed:
                raise self.fail(
                    f"unknown key '{key}' in {context} — {did_you_mean(key, allowed)}", node, key
                )

    def typed(self, node: dict[str, Any], key: str, check: Callable[[Any], bool], expected: str) -> Any:
        value = node[key]
        if not check(value):
            raise self.fail(f"'{key}' must be {expected}, not {type_name(value)} ({to_plain(value)!r}).", node, key)
        return to_plain(value)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(to_plain(value), bool)


def _is_command(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, list) and bool(value) and all(
        isinstance(to_plain(v), str | int | float) and not isinstance(to_plain(v), bool) for v in value
    )


def _merge(base: Any, over: Any) -> Any:
    """Deep merge for `extends`: mappings merge key by key (into `over`, which keeps its
    line numbers), anything else in `over` replaces the base."""
    if isinstance(base, dict) and isinstance(over, dict):
        for key, value in base.items():
            over[key] = _merge(value, over[key]) if key in over else value
        return over
    return over


def _load_with_extends(path: Path, chain: tuple[Path, ...], text: str | None = None) -> Any:
    reader = _Reader(path)
    data = load_yaml(path, text)
    if data is None:
        raise ExperimentError("the file is empty.", path=path, line=1, hint="Add at least `jobs:` with one job.")
    if not isinstance(data, dict):
        raise reader.fail(f"the top level must be a mapping, not a {type_name(data)}.", data)
    if "extends" not in data:
        return data
    bases = data["extends"]
    bases_list = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases_list, list) or not all(isinstance(b, str) for b in bases_list):
        raise reader.fail("'extends' must be a file name or a list of them.", data, "extends")
    del data["extends"]
    for base in reversed(bases_list):
        base_path = sources.resolve(path.parent / base)
        if base_path in chain or base_path == sources.resolve(path):
            loop = " -> ".join(p.name for p in (*chain, sources.resolve(path), base_path))
            raise reader.fail(f"'extends' loop: {loop}.", data, hint="Remove one of the extends.")
        if not base_path.is_file():
            raise reader.fail(f"'extends' file not found: {base}.", data, hint=f"Paths are relative to {path.parent}.")
        if len(chain) >= MAX_PIPELINE_DEPTH:
            raise reader.fail(f"'extends' files nest more than {MAX_PIPELINE_DEPTH} deep.", data, "extends",
                              hint="Flatten the chain: extend fewer files, each with more in it.")
        data = _merge(_load_with_extends(base_path, (*chain, sources.resolve(path))), data)
    return data


def _dependencies(reader: _Reader, node: Any, parent: dict[str, Any]) -> tuple[Dependency, ...]:
    """`depends_on` as a name, a list of names, or {upstream: {output: param}}."""
    if isinstance(node, str):
        return (Dependency(node, {}, reader.where(parent, "depends_on")),)
    if isinstance(node, list):
        if not all(isinstance(n, str) for n in node):
            raise reader.fail("'depends_on' list entries must be job names.", parent, "depends_on")
        return tuple(Dependency(n, {}, reader.where(node, i)) for i, n in enumerate(node))
    if not isinstance(node, dict):
        raise reader.fail("'depends_on' must map upstream job names to {output: param}.", parent, "depends_on")
    deps = []
    for upstream, mapping in node.items():
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            raise reader.fail(
                f"depends_on.{upstream} must map upstream outputs to params, like {{model: model_path}}.",
                node, upstream,
            )
        deps.append(Dependency(str(upstream), {str(k): str(v) for k, v in mapping.items()}, reader.where(node, upstream)))
    return tuple(deps)


def _resources(reader: _Reader, node: Any, parent: Any, key: str) -> dict[str, Any]:
    node = reader.mapping(node, key, parent)
    reader.keys(node, RESOURCE_KEYS, "resources")
    out: dict[str, Any] = {}
    for name, value in node.items():
        plain = to_plain(value)
        try:
            if name == "labels":
                # What a node must have (Slurm constraints, Ray custom resources): a name or a list of names.
                labels = [plain] if isinstance(plain, str) else plain
                if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
                    raise ValueError(f"must be a name or a list of names, not {plain!r}")
                out[name] = labels
            elif name in ("gpus", "cpus"):
                if isinstance(plain, bool) or not isinstance(plain, int | float) or plain < 0:
                    raise ValueError(f"must be a non-negative number, not {plain!r}")
                out[name] = plain
            elif name == "labels":
                # What a node must have (Ray: custom resources of the nodes; Slurm: constraints): a name or a
                # list of names; ignored locally.
                labels = [plain] if isinstance(plain, str) else plain
                if not isinstance(labels, list) or not all(isinstance(item, str) and item for item in labels):
                    raise ValueError(f"must be a name or a list of names (like [a100]), not {plain!r}")
                out[name] = tuple(labels)
            else:
                out[name] = parse_size(plain)
        except ValueError as exc:
            raise reader.fail(f"resources.{name}: {exc}.", node, name) from None
    return out


def _retry(reader: _Reader, node: Any, parent: Any, key: str) -> dict[str, Any]:
    """The keys of a `retry:` mapping that are given, parsed (`oom` as an `OomRetry`)."""
    node = reader.mapping(node, key, parent)
    reader.keys(node, RETRY_KEYS, "retry")
    out: dict[str, Any] = {}
    if "failed" in node:
        failed = to_plain(node["failed"])
        if isinstance(failed, bool) or not isinstance(failed, int) or failed < 0:
            raise reader.fail("retry.failed must be a number of retries (0 or more).", node, "failed")
        out["failed"] = failed
    if "delay" in node:
        try:
            out["delay"] = parse_duration(to_plain(node["delay"]))
        except ValueError as exc:
            raise reader.fail(f"retry.delay: {exc}.", node, "delay") from None
    if "oom" in node:
        out["oom"] = _oom(reader, node)
    return out


def _oom(reader: _Reader, node: Any) -> OomRetry:
    """`retry.oom`: a number of retries, or a mapping of how to retry."""
    plain = to_plain(node["oom"])
    if isinstance(plain, int) and not isinstance(plain, bool):
        if plain < 0:
            raise reader.fail("retry.oom must be a number of retries (0 or more) or a mapping.", node, "oom")
        return OomRetry(max=plain)
    oom = reader.mapping(node["oom"], "oom", node)
    reader.keys(oom, OOM_KEYS, "retry.oom")
    scale = to_plain(oom.get("scale", {}))
    if not isinstance(scale, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 1 for v in scale.values()
    ):
        raise reader.fail("retry.oom.scale must map params to factors between 0 and 1.", oom, "scale")
    count = to_plain(oom.get("max", DEFAULT_OOM_MAX))
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise reader.fail("retry.oom.max must be a number of retries (0 or more).", oom, "max")
    strategy = to_plain(oom.get("strategy") or ("scale" if scale else "wait"))
    if strategy not in OOM_STRATEGIES:
        raise reader.fail(f"retry.oom.strategy must be one of {', '.join(OOM_STRATEGIES)}, not {strategy!r}.",
                          oom, "strategy")
    floor = to_plain(oom.get("floor"))
    number = (int, float)
    if floor is not None and not (isinstance(floor, number) and not isinstance(floor, bool)) and not (
            isinstance(floor, dict) and all(isinstance(v, number) and not isinstance(v, bool) for v in floor.values())):
        raise reader.fail("retry.oom.floor must be a number, or map params to numbers.", oom, "floor")
    try:
        wait = parse_duration(to_plain(oom.get("wait", DEFAULT_OOM_WAIT)))
    except ValueError as exc:
        raise reader.fail(f"retry.oom.wait: {exc}.", oom, "wait") from None
    return OomRetry(max=count, strategy=strategy, scale={str(k): float(v) for k, v in scale.items()},
                    floor=({str(k): float(v) for k, v in floor.items()} if isinstance(floor, dict)
                           else None if floor is None else float(floor)),
                    wait=wait)


def _job(reader: _Reader, name: str, node: Any, parent: Any, kind: str, defaults: dict[str, Any]) -> JobSpec:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise reader.fail(
            f"job name {name!r} is not valid.", parent, name,
            hint="Use letters, digits, '_' and '-', starting with a letter.",
        )
    if not isinstance(node, dict):
        raise reader.fail(f"job '{name}' must be a mapping with at least 'run', not a {type_name(node)}.", parent, name)
    reader.keys(node, JOB_KEYS, f"job '{name}'")
    if "run" not in node and "pipeline" not in node:
        raise reader.fail(f"job '{name}' has no 'run' command.", parent, name,
                          hint="Add `run: python your_script.py ...`.")
    if "pipeline" in node:
        return _pipeline_step(reader, name, node, parent, defaults)
    run = node["run"]
    if not _is_command(run):
        raise reader.fail("'run' must be a command string or a non-empty list of arguments.", node, "run")
    params = dict(defaults.get("params", {}))
    params.update(to_plain(reader.mapping(node.get("params"), "params", node)))
    env = dict(defaults.get("env", {}))
    env.update({str(k): str(to_plain(v)) for k, v in reader.mapping(node.get("env"), "env", node).items()})
    cache: bool | float = True
    strict = False
    if "cache" in node:
        value = to_plain(node["cache"])
        if isinstance(value, bool):
            cache = value
        elif value == "strict":
            strict = True
        else:
            try:
                cache = parse_duration(value)
            except ValueError as exc:
                raise reader.fail(f"'cache' must be true, false, strict or a max age like 7d: {exc}.",
                                  node, "cache") from None
    timeout = None
    if "timeout" in node:
        try:
            timeout = parse_duration(to_plain(node["timeout"]))
        except ValueError as exc:
            raise reader.fail(f"'timeout': {exc}.", node, "timeout") from None
    inputs = node.get("inputs", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise reader.fail("'inputs' must be a glob or a list of globs.", node, "inputs")
    outputs = node.get("outputs", [])
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise reader.fail("'outputs' must be a name or a list of output names.", node, "outputs")
    expect = reader.mapping(node.get("expect"), "expect", node)
    if kind == "job" and expect:
        raise reader.fail("'expect' belongs to tests; move this job under `tests:`.", node, "expect")
    for key, text in expect.items():
        try:
            parse_expectation(str(key), str(to_plain(text)))
        except ExperimentError as exc:
            raise reader.fail(exc.message, expect, key, exc.hint) from None
    sweep = reader.mapping(node.get("sweep"), "sweep", node)
    positions = dict(defaults.get("positions", {}))
    for part in ("run", "env", "shards", "executor"):
        if part in node:
            positions[part] = reader.where(node, part)
    if isinstance(node.get("params"), dict):
        for key in node["params"]:
            positions[f"params.{key}"] = reader.where(node["params"], key)
    # The file's `resources:` and `retry:`, then the job's, key by key; typed once, here.
    resources = Resources(**{**defaults.get("resources", {}),
                             **_resources(reader, node.get("resources"), node, "resources")})
    retry = RetryPolicy(**{**defaults.get("retry", {}), **_retry(reader, node.get("retry"), node, "retry")})
    return JobSpec(
        name=name,
        kind=kind,
        run=to_plain(run),
        where=reader.where(parent, name),
        params=params,
        env=env,
        python=reader.typed(node, "python", _is_str, "a path to an interpreter") if "python" in node else None,
        shell=reader.typed(node, "shell", _is_bool, "true or false") if "shell" in node else False,
        inputs=tuple(inputs),
        cache=cache,
        strict=strict,
        outputs=tuple(outputs),
        sweep=to_plain(sweep),
        depends_on=_dependencies(reader, node["depends_on"], node) if "depends_on" in node else (),
        gather=reader.typed(node, "gather", _is_bool, "true or false") if "gather" in node else False,
        resources=resources,
        retry=retry,
        timeout=timeout,
        expect={str(k): str(to_plain(v)) for k, v in expect.items()},
        shards=parse_shards(node, reader.fail) if "shards" in node else None,
        reduce=parse_reduce(node, tuple(outputs), reader.fail) if "reduce" in node else (),
        positions=positions,
        metrics_from=_metrics_from(reader, node) if "metrics_from" in node else (),
        executor=_executor(reader, node) if "executor" in node else defaults.get("executor"),
    )


def _executor(reader: _Reader, node: dict[str, Any]) -> str:
    """`executor: NAME`: where the job runs (the name is checked against the registry before a run)."""
    name = to_plain(node["executor"])
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise reader.fail(f"'executor' must name an executor (like local), not {name!r}.", node, "executor")
    return name


def _metrics_from(reader: _Reader, node: dict[str, Any]) -> tuple[str, ...]:
    """`metrics_from: {stdout: REGEX or [REGEX, ...]}`: each a regex with named groups."""
    block = reader.mapping(node["metrics_from"], "metrics_from", node)
    reader.keys(block, ("stdout",), "metrics_from")
    patterns = to_plain(block.get("stdout", []))
    patterns = [patterns] if isinstance(patterns, str) else patterns
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise reader.fail("metrics_from.stdout must be a regular expression or a list of them.", block, "stdout")
    for pattern in patterns:
        try:
            names = set(re.compile(pattern).groupindex)
        except re.error as exc:
            raise reader.fail(f"metrics_from.stdout: {pattern!r} is not a valid regular expression ({exc}).",
                              block, "stdout") from None
        if not names - {"step"}:
            raise reader.fail(f"metrics_from.stdout: {pattern!r} names no metric.", block, "stdout",
                              hint=r"Name a group after each metric: 'iter (?P<step>\d+): loss (?P<loss>[\d.]+)'.")
    return tuple(patterns)


def _defaults(reader: _Reader, data: dict[str, Any]) -> tuple[dict[str, str], dict[str, Where]]:
    """`defaults: {group: choice}`: the config group choices of the file."""
    node = reader.mapping(data.get("defaults"), "defaults", data)
    choices: dict[str, str] = {}
    where: dict[str, Where] = {}
    for group, choice in node.items():
        if not isinstance(group, str) or not NAME_RE.match(group):
            raise reader.fail(f"config group name {group!r} is not valid.", node, group,
                              hint="Name a folder under the configs folder (letters, digits, '_' and '-').")
        plain = to_plain(choice)
        if isinstance(plain, bool) or not isinstance(plain, str | int | float):
            raise reader.fail(f"defaults.{group} must name one choice (a file in configs/{group}/), "
                              f"not {type_name(plain)}.", node, group)
        choices[group] = str(plain)
        where[group] = reader.where(node, group)
    return choices, where


def _default_name(path: Path) -> str:
    """An experiment without `name:` is named after its file, or its folder for `exp.yaml`."""
    stem = path.stem if path.stem not in ("exp", "experiment") else sources.resolve(path).parent.name
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")
    return cleaned if cleaned and cleaned[0].isalpha() else f"exp-{cleaned}" if cleaned else "experiment"


PIPELINE_STEP_KEYS = ("pipeline", "description", "params", "env", "depends_on")


def _pipeline_step(reader: _Reader, name: str, node: dict[str, Any], parent: Any,
                   defaults: dict[str, Any]) -> JobSpec:
    reader.keys(node, PIPELINE_STEP_KEYS, f"pipeline step '{name}'")
    target = node["pipeline"]
    if not isinstance(target, str) or not target.strip():
        raise reader.fail("'pipeline' must name another experiment file.", node, "pipeline")
    file = sources.resolve(reader.path.parent / target)
    if not file.is_file():
        raise reader.fail(f"pipeline file not found: {target}.", node, "pipeline",
                          hint=f"Paths are relative to {reader.path.parent}.")
    return JobSpec(
        name=name,
        kind="pipeline",
        run="",
        where=reader.where(parent, name),
        params=to_plain(reader.mapping(node.get("params"), "params", node)),
        env={str(k): str(to_plain(v)) for k, v in reader.mapping(node.get("env"), "env", node).items()},
        depends_on=_dependencies(reader, node["depends_on"], node) if "depends_on" in node else (),
        pipeline=file,
    )


def _sink_for(step: JobSpec, inner: dict[str, JobSpec], output: str | None) -> str:
    """The inner job that stands for a pipeline step as an upstream (the one making `output`)."""
    used = {dep.upstream for job in inner.values() for dep in job.depends_on}
    sinks = [name for name in inner if name not in used]
    if len(sinks) == 1:
        return sinks[0]
    makers = [name for name in sinks if output is not None and output in inner[name].outputs]
    if len(makers) == 1:
        return makers[0]
    raise ExperimentError(
        f"pipeline step '{step.name}' ends in several jobs ({', '.join(sorted(sinks))}); "
        f"which one makes output '{output}' is ambiguous.",
        path=step.where.path, line=step.where.line, column=step.where.column,
        hint="Declare `outputs:` on the job of the inner file that produces it.",
    )


def _inline(step: JobSpec, defaults: dict[str, Any], chain: tuple[Path, ...]) -> dict[str, JobSpec]:
    assert step.pipeline is not None
    if step.pipeline in chain:
        loop = " -> ".join(p.name for p in (*chain, step.pipeline))
        raise ExperimentError(f"pipelines include each other in a loop: {loop}.", path=step.where.path,
                              line=step.where.line, column=step.where.column)
    if len(chain) >= MAX_PIPELINE_DEPTH:
        raise ExperimentError(
            f"pipeline files nest more than {MAX_PIPELINE_DEPTH} deep ({chain[0].name} -> {chain[1].name} -> ... "
            f"-> {step.pipeline.name}).", path=step.where.path, line=step.where.line, column=step.where.column,
            hint="Flatten the pipeline: list the inner jobs in fewer files.",
        )
    sub = _parse(step.pipeline, None, (*chain, step.pipeline))
    if sub.defaults:
        where = next(iter(sub.defaults_where.values()))
        raise ExperimentError(
            "config groups (`defaults:`) are not supported in a file used as a pipeline step.",
            path=where.path, line=where.line, column=where.column,
            hint="Move `defaults:` to the outer experiment file: its choices reach the step's jobs too.",
        )
    inner = {name: job for name, job in sub.jobs.items() if job.kind == "job"}
    prefix = f"{step.name}/"
    sources = [name for name, job in inner.items() if not job.depends_on]
    result = {}
    for name, job in inner.items():
        deps = tuple(replace(d, upstream=prefix + d.upstream) for d in job.depends_on)
        if name in sources:
            deps += step.depends_on
        result[prefix + name] = replace(
            job,
            name=prefix + name,
            params={**defaults.get("params", {}), **job.params, **step.params},
            env={**job.env, **step.env},
            depends_on=deps,
        )
    return result


def _sink_path(step: JobSpec, local: dict[str, JobSpec], output: str | None) -> str:
    """The inlined job of pipeline `step` that a dependency on the step (for `output`) means."""
    return f"{step.name}/{_sink_for(step, local, output)}"


def _inline_pipelines(jobs: dict[str, JobSpec], defaults: dict[str, Any],
                      chain: tuple[Path, ...]) -> dict[str, JobSpec]:
    """Replace every `pipeline:` step by its file's jobs, and point dependencies on it at them."""
    inlined: dict[str, JobSpec] = {}
    sinks: dict[str, Callable[[str | None], str]] = {}
    for name, job in jobs.items():
        if job.kind != "pipeline":
            inlined[name] = job
            continue
        inner = _inline(job, defaults, chain)
        local = {n[len(name) + 1:]: j for n, j in inner.items()}
        sinks[name] = functools.partial(_sink_path, job, local)
        inlined.update(inner)
    if not sinks:
        return inlined
    result = {}
    for name, job in inlined.items():
        deps = []
        for dep in job.depends_on:
            if dep.upstream not in sinks:
                deps.append(dep)
                continue
            by_sink: dict[str, dict[str, str]] = {}
            for output, param in dep.mapping.items() or {None: None}.items():
                target = sinks[dep.upstream](output)
                by_sink.setdefault(target, {})
                if output is not None and param is not None:
                    by_sink[target][output] = param
            deps.extend(replace(dep, upstream=target, mapping=mapping) for target, mapping in by_sink.items())
        result[name] = replace(job, depends_on=tuple(deps))
    return result


def parse_experiment(path: Path, text: str | None = None) -> ExperimentSpec:
    """Load, compose (`extends`, `pipeline:`) and check an experiment file."""
    return _parse(Path(path), text, (sources.resolve(Path(path)),))


def _parse(path: Path, text: str | None, chain: tuple[Path, ...]) -> ExperimentSpec:
    path = Path(path)
    reader = _Reader(path)
    data = _load_with_extends(path, (), text)
    reader.keys(data, TOP_KEYS, "the experiment file")
    name = data.get("name", _default_name(path))
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise reader.fail(f"experiment name {name!r} is not valid.", data, "name",
                          hint="Use letters, digits, '_' and '-', starting with a letter.")
    defaults = {
        "params": to_plain(reader.mapping(data.get("params"), "params", data)),
        "env": {str(k): str(to_plain(v)) for k, v in reader.mapping(data.get("env"), "env", data).items()},
        "resources": _resources(reader, data.get("resources"), data, "resources"),
        "retry": _retry(reader, data.get("retry"), data, "retry"),
        "executor": _executor(reader, data) if "executor" in data else None,
        "positions": {f"params.{k}": reader.where(data["params"], k) for k in data.get("params") or {}}
        if isinstance(data.get("params"), dict) else {},
    }
    if "executor" in data:
        defaults["positions"]["executor"] = reader.where(data, "executor")
    jobs: dict[str, JobSpec] = {}
    for section, kind in (("jobs", "job"), ("tests", "test")):
        block = reader.mapping(data.get(section), section, data)
        for job_name, node in block.items():
            if job_name in jobs:
                raise reader.fail(f"'{job_name}' is both a job and a test; names must be unique.", block, job_name)
            jobs[str(job_name)] = _job(reader, job_name, node, block, kind, defaults)
    if not jobs:
        raise reader.fail("the file defines no jobs.", data, hint="Add `jobs:` with at least one job that has `run:`.")
    jobs = _inline_pipelines(jobs, defaults, chain)
    groups, groups_where = _defaults(reader, data)
    return ExperimentSpec(name=str(name), path=path, jobs=jobs, params=defaults["params"],
                          defaults=groups, defaults_where=groups_where)
