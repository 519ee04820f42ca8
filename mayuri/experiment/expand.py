"""From an ExperimentSpec to job instances: overrides applied, sweeps and fan-out expanded.

Each instance knows its resolved params (with the run-time built-ins and
upstream outputs left symbolic, so they can be hashed), its command, and the
upstream instances it consumes. Instances come out in an order where every
upstream precedes its dependents.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import re
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mayuri.errors import ExperimentError
from mayuri.experiment.config_groups import Groups, groups_of, merge_under
from mayuri.experiment.interpolate import (
    Interpolator,
    UndefinedName,
    as_text,
    instance_label,
    references,
)
from mayuri.experiment.limits import check_launchable, check_plan_size, grid_size
from mayuri.experiment.overrides import Override, del_dotted, flat_params, has_dotted, set_dotted
from mayuri.experiment.spec import ExperimentSpec, JobSpec
from mayuri.experiment.sweeps import sweep_axes, sweep_points
from mayuri.experiment.upstream_positions import (
    UPSTREAM_KEY,
    config_positions,
    name_free,
    positions,
)
from mayuri.hashing import hash_structure
from mayuri.suggest import did_you_mean

PYTHON_NAMES = ("python", "python3")


@dataclass(frozen=True)
class Binding:
    """A param filled from upstream outputs at launch: one instance, or a list of them (gather)."""

    param: str
    upstream_job: str
    output: str
    instances: tuple[str, ...]
    gather: bool


@dataclass
class JobInstance:
    """One run-to-be of a job: a sweep point crossed with one choice of upstream instances."""

    key: str
    job: JobSpec
    point: dict[str, Any]
    raw_params: dict[str, Any]
    params: dict[str, Any]
    command: list[str] | str
    env: dict[str, str]
    upstream: dict[str, tuple[str, ...]]
    bindings: tuple[Binding, ...]
    config: dict[str, Any] = field(default_factory=dict)
    # The params that tell this instance apart from the other instances of its job, as in its
    # label: its own sweep point, and its upstreams' (qualified `train.lr` unless shared).
    dims: dict[str, Any] = field(default_factory=dict)
    # Params the job uses whatever it reads at run time: those written into its run, env or python.
    static_used: frozenset[str] = frozenset()
    # The hash of the config without its params: the key under which the cache looks runs up.
    base_hash: str = ""
    # Each upstream's name -> its position in `depends_on`: how the cache's keys name it (upstream_positions.py).
    positions: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.job.name

    @functools.cached_property
    def config_hash(self) -> str:
        """The hash of the whole config (recorded on a run); worked out when needed, not on a warm check."""
        return hash_structure("job-config/v1", self.config)

    @functools.cached_property
    def key_params(self) -> dict[str, Any]:
        """The params as the cache counts them: upstream placeholders name positions, not jobs."""
        result: dict[str, Any] = name_free(self.params, config_positions(self.config))
        return result

    @functools.cached_property
    def upstream_keys(self) -> tuple[str, ...]:
        # Kept: a plan asks every turn, and a reduction has one upstream per shard.
        return tuple(key for keys in self.upstream.values() for key in keys)


def upstream_name(job: str, output: str) -> str:
    """The built-in name under which an upstream output is filled in at launch."""
    return f"mayuri.upstream.{job}.{output}"


def _error(job: JobSpec, message: str, hint: str | None = None, part: str | None = None) -> ExperimentError:
    where = job.at(part) if part else job.where
    return ExperimentError(message, path=where.path, line=where.line, column=where.column, hint=hint)


T = TypeVar("T")


def _resolving(job: JobSpec, part: str, resolve: Callable[[], T]) -> T:
    """Run one interpolation, turning its error into one that points at `part` of the job."""
    try:
        return resolve()
    except ExperimentError as exc:
        hint = exc.hint
        if isinstance(exc, UndefinedName):
            hint = hint or "Define it under `params:` of the job or at the top of the file."
        raise _error(job, f"job '{job.name}', {part}: {exc.message}", hint, part) from None


def _order(spec: ExperimentSpec) -> list[str]:
    """Jobs in dependency order; unknown upstreams and cycles are errors."""
    for job in spec.jobs.values():
        for dep in job.depends_on:
            if dep.upstream not in spec.jobs:
                raise ExperimentError(
                    f"job '{job.name}' depends on unknown job '{dep.upstream}' — {did_you_mean(dep.upstream, spec.jobs)}",
                    path=dep.where.path, line=dep.where.line, column=dep.where.column,
                )
            if dep.upstream == job.name:
                raise _error(job, f"job '{job.name}' depends on itself.")
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = " -> ".join([*trail[trail.index(name):], name])
            job = spec.jobs[name]
            raise _error(job, f"the jobs depend on each other in a cycle: {cycle}.",
                         hint="Remove one of these depends_on entries.")
        state[name] = "open"
        for dep in spec.jobs[name].depends_on:
            visit(dep.upstream, [*trail, name])
        state[name] = "done"
        order.append(name)

    for name in spec.jobs:
        visit(name, [])
    return order


def _command(job: JobSpec, interp: Interpolator) -> list[str] | str:
    if job.shell:
        text = job.run if isinstance(job.run, str) else shlex.join(str(a) for a in job.run)
        # Values are quoted so that a param can never become shell syntax.
        return _interpolate_shell(text, interp)
    try:
        tokens = shlex.split(job.run) if isinstance(job.run, str) else [as_text(a) for a in job.run]
    except ValueError as exc:
        raise ExperimentError(f"the command cannot be split into arguments ({exc}).",
                              hint="Close the quote, or write `run:` as a list of arguments.") from None
    if not tokens:
        raise _error(job, f"job '{job.name}' has an empty 'run' command.")
    argv: list[str] = []
    for token in tokens:
        whole = _PASS_THROUGH.fullmatch(token)
        if whole:
            argv.extend(_pass_through(whole.group(1), whole.group(2), interp))
        elif _PASS_THROUGH.search(token):
            raise ExperimentError(f"'{token}': ${{flags:...}} and ${{args:...}} must be whole arguments.",
                                  hint="Separate it from the text around it with spaces.")
        else:
            argv.append(as_text(interp.resolve(token)))
    return argv


# `${flags:NAME}` (a mapping param as --key=value arguments) and `${args:NAME}` (a list param as arguments).
_PASS_THROUGH = re.compile(r"\$\{\s*(flags|args):\s*([^}]*?)\s*\}")


def _pass_through(kind: str, name: str, interp: Interpolator) -> list[str]:
    """The arguments `${flags:NAME}` or `${args:NAME}` stands for, one argv element each."""
    value = interp.resolve("${" + name + "}")
    if kind == "args":
        if not isinstance(value, list):
            raise ExperimentError(f"${{args:{name}}} needs a list param; '{name}' is {type(value).__name__} "
                                  f"({as_text(value)}).", hint=f"Use ${{{name}}} for one argument.")
        return [as_text(item) for item in value]
    if not isinstance(value, dict):
        raise ExperimentError(f"${{flags:{name}}} needs a mapping param; '{name}' is {type(value).__name__} "
                              f"({as_text(value)}).", hint=f"Use ${{{name}}} for one argument.")
    return [f"--{key}={as_text(item)}" for key, item in flat_params(value).items()]


def _interpolate_shell(text: str, interp: Interpolator) -> str:
    def quote(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        passing = _PASS_THROUGH.fullmatch(match.group(0))
        if passing:
            return " ".join(shlex.quote(arg) for arg in _pass_through(passing.group(1), passing.group(2), interp))
        value = interp.resolve("${" + match.group(2) + "}")
        return shlex.quote(as_text(value))

    return re.sub(r"\$(\$?)\{\s*([^}]*?)\s*\}", quote, text)


@dataclass
class _Applied:
    """A job's params after the overrides, and what they leave for each instance to do."""

    params: dict[str, Any]
    sweeps: dict[str, list[Any]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    # Config group -> choice (for groups not swept), and the `group.key=value` set on top of a choice.
    choices: dict[str, str] = field(default_factory=dict)
    patches: list[tuple[str, Any]] = field(default_factory=list)


def _apply_overrides(
    job: JobSpec, user: Mapping[str, Any], overrides: Sequence[Override], groups: Groups | None
) -> _Applied:
    applied = _Applied({k: v for k, v in job.params.items()})
    params, cli_sweeps = applied.params, applied.sweeps
    group_names = set(groups.defaults) if groups else set()
    if groups:
        for group, choice in groups.defaults.items():
            params[group] = merge_under(groups.params(group, choice), job.params.get(group))
            applied.choices[group] = choice
    # [user.NAME] in mayuri.toml: `lr = 0.1` for every job that has lr,
    # `train.lr = 0.1` (a table named after a job) for that job only.
    for key, value in user.items():
        if key == job.name and isinstance(value, dict):
            for sub, sub_value in value.items():
                set_dotted(params, sub, sub_value)
        elif has_dotted(params, key):
            set_dotted(params, key, value)
    # A group's choice comes first, so that `model.width=128` changes the chosen block.
    mine = [o for o in overrides if o.job is None or o.job == job.name]
    for override in sorted(mine, key=lambda o: o.key not in group_names):
        key = override.key
        if key in group_names and override.op in ("set", "add"):
            assert groups is not None
            names = [as_text(v) for v in override.values]
            for name in names:
                groups.params(key, name, override.text)  # an unknown choice fails here
            if override.is_sweep:
                cli_sweeps[key] = names
                applied.choices.pop(key, None)
            else:
                cli_sweeps.pop(key, None)
                params[key] = merge_under(groups.params(key, names[0]), job.params.get(key))
                applied.choices[key] = names[0]
            continue
        if override.op == "remove":
            if has_dotted(params, key):
                del_dotted(params, key)
            cli_sweeps.pop(key, None)
            applied.removed.add(key)
            continue
        if override.op == "set" and override.job is None and not has_dotted(params, key) and key not in job.sweep:
            continue
        # A value given on the command line replaces the file's sweep of that key.
        if override.is_sweep or key in job.sweep:
            cli_sweeps[key] = list(override.values)
        else:
            # The later override wins, also over an earlier sweep of the same key.
            cli_sweeps.pop(key, None)
            set_dotted(params, key, override.values[0])
            if key.partition(".")[0] in group_names:
                applied.patches.append((key, override.values[0]))
    return applied


def check_overrides(spec: ExperimentSpec, overrides: Sequence[Override], groups: Groups | None = None) -> None:
    """Every override must name a param of some job (or of the named job); `+KEY` one that none has."""
    for override in overrides:
        jobs = [spec.jobs[override.job]] if override.job else list(spec.jobs.values())
        group_names = groups.defaults if groups else {}
        known = {k for j in jobs for k in (*j.params, *j.sweep, *group_names)}
        if override.op == "add" and override.key in group_names and override.key not in spec.defaults:
            continue  # `+GROUP=CHOICE`: a config group the file does not name
        found = override.key in group_names or any(
            has_dotted(j.params, override.key) or override.key in j.sweep for j in jobs
        ) or _in_group(override, overrides, groups)
        if override.op == "add" and found:
            raise ExperimentError(
                f"override '{override.text}': '{override.key}' is already a param.",
                path=spec.path, hint=f"Write {override.text[1:]} to change it.",
            )
        if override.op != "add" and not found:
            where = f"job '{override.job}'" if override.job else "any job"
            raise ExperimentError(
                f"override '{override.text}': '{override.key}' is not a param of {where} — "
                f"{did_you_mean(override.key, known)}"
                + (" Write +KEY=VALUE to add a param the file does not have." if override.op == "set" else ""),
                path=spec.path,
            )


def _in_group(override: Override, overrides: Sequence[Override], groups: Groups | None) -> bool:
    """Whether `group.key` names a param of the group's default choice or of a choice the overrides pick."""
    group, dot, rest = override.key.partition(".")
    if groups is None or not dot or group not in groups.defaults:
        return False
    choices = {groups.defaults[group], *(as_text(v) for o in overrides if o.key == group for v in o.values)}
    return any(has_dotted(groups.params(group, choice), rest) for choice in sorted(choices))


def expand(
    spec: ExperimentSpec,
    overrides: Sequence[Override] = (),
    user_overrides: Mapping[str, Any] | None = None,
    only: Sequence[str] = (),
    kinds: Sequence[str] = ("job",),
    configs: Path | None = None,
    max_plan: int | None = None,
) -> list[JobInstance]:
    """The job instances of an experiment, in dependency order (`configs`: the config groups' folder;
    at most `max_plan` of them)."""
    groups = groups_of(spec, configs, overrides)
    check_overrides(spec, overrides, groups)
    for name in only:
        if name not in spec.jobs:
            raise ExperimentError(f"--only {name}: no such job — {did_you_mean(name, spec.jobs)}", path=spec.path)
    order = _order(spec)
    wanted = _needed(spec, list(only) or [n for n in order if spec.jobs[n].kind in kinds])
    if max_plan is not None:
        _check_size(spec, [n for n in order if n in wanted], overrides, user_overrides or {}, groups, max_plan)
    instances: dict[str, list[JobInstance]] = {}
    for name in order:
        if name not in wanted:
            continue
        instances[name] = _expand_job(spec.jobs[name], instances, overrides, user_overrides or {}, groups)
    return [inst for name in order if name in instances for inst in instances[name]]


def _check_size(spec: ExperimentSpec, order: list[str], overrides: Sequence[Override],
                user: Mapping[str, Any], groups: Groups | None, limit: int) -> None:
    """Count the instances the plan would make, without making them, and refuse too many."""
    counts: dict[str, int] = {}
    axes: dict[str, dict[str, int]] = {}
    for name in order:
        job = spec.jobs[name]
        cli_sweeps = _apply_overrides(job, user, overrides, groups).sweeps
        try:
            axes[name] = sweep_axes({**job.sweep, **cli_sweeps})
        except ExperimentError as exc:
            raise _error(job, f"job '{job.name}': {exc.message}", exc.hint) from None
        fan_out = 1 if job.gather else grid_size(counts[dep.upstream] for dep in job.depends_on)
        counts[name] = grid_size(axes[name].values()) * fan_out
    check_plan_size(counts, spec.jobs, axes, limit)


def _needed(spec: ExperimentSpec, roots: list[str]) -> set[str]:
    needed: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(dep.upstream for dep in spec.jobs[name].depends_on)
    return needed


def _expand_job(
    job: JobSpec,
    done: Mapping[str, list[JobInstance]],
    overrides: Sequence[Override],
    user: Mapping[str, Any],
    groups: Groups | None,
) -> list[JobInstance]:
    applied = _apply_overrides(job, user, overrides, groups)
    sweep = {k: v for k, v in job.sweep.items() if k not in applied.removed}
    sweep.update(applied.sweeps)
    try:
        points = sweep_points(sweep)
    except ExperimentError as exc:
        raise _error(job, f"job '{job.name}': {exc.message}", exc.hint) from None
    # Without gather, each upstream instance gets its own downstream instance (fan-out).
    choices: list[list[tuple[str, tuple[JobInstance, ...]]]] = []
    for dep in job.depends_on:
        ups = done[dep.upstream]
        if job.gather:
            choices.append([(dep.upstream, tuple(ups))])
        else:
            choices.append([(dep.upstream, (u,)) for u in ups])
    result = []
    references = _job_references(job)
    for point in points:
        for combo in itertools.product(*choices) if choices else [()]:
            picked = dict(combo)
            if job.depends_on and not _pairs(point, picked):
                continue
            result.append(_instance(job, applied, point, picked, groups, references))
    keys = [i.key for i in result]
    if len(set(keys)) != len(keys):
        # Only identical instances can share a label (a job fanned out twice over the same upstream).
        seen: dict[str, int] = {}
        for inst in result:
            seen[inst.key] = seen.get(inst.key, 0) + 1
            if seen[inst.key] > 1:
                inst.key = f"{inst.key}({seen[inst.key]})"
    return result


def _pairs(point: Mapping[str, Any], upstream: Mapping[str, tuple[JobInstance, ...]]) -> bool:
    """Whether the chosen upstream instances agree with this point, and each other, on the params they share.

    A param is shared when it is swept in both jobs (a top-level param swept
    on the command line reaches every job that has it): then the instance for
    `seed=1` takes only upstream instances made with `seed=1`, and a multirun
    is independent copies of the pipeline. Two upstreams that carry the same
    upstream's sweep (a diamond) must come from the same instance of it.
    Gathered upstreams are filtered, not refused (see `_instance`).
    """
    agreed = dict(point)
    for name, ups in upstream.items():
        if len(ups) != 1:
            continue
        for key, value in _carried(name, ups[0], point).items():
            if agreed.setdefault(key, value) != value:
                return False
    return True


def _carried(name: str, upstream: JobInstance, point: Mapping[str, Any]) -> dict[str, Any]:
    """An upstream instance's distinguishing params as its downstream names them.

    Its own sweep is named after it (`train.lr`), unless the downstream sweeps
    the same param (then it is shared, named once); what it carries from its
    own upstreams is named already.
    """
    return {key if ("." in key or key in point) else f"{name}.{key}": value
            for key, value in upstream.dims.items()}


def _instance(
    job: JobSpec,
    applied: _Applied,
    point: dict[str, Any],
    upstream: dict[str, tuple[JobInstance, ...]],
    groups: Groups | None,
    references: frozenset[str],
) -> JobInstance:
    raw = {k: v for k, v in applied.params.items()}
    choices = dict(applied.choices)
    for key, value in point.items():
        if groups and key in groups.defaults:
            # A swept config group (on the command line or in `sweep:`): the point names the choice,
            # and labels the instance with it.
            raw[key] = merge_under(groups.params(key, as_text(value)), job.params.get(key))
            choices[key] = as_text(value)
        else:
            set_dotted(raw, key, value)
    for key, value in applied.patches:
        if key.partition(".")[0] in point:
            set_dotted(raw, key, value)
    dims: dict[str, Any] = dict(point)
    bindings = []
    for dep in job.depends_on:
        ups = upstream[dep.upstream]
        if job.gather:
            # A gathering instance takes the upstream instances that share its swept params.
            ups = tuple(u for u in ups if all(u.dims.get(k, v) == v for k, v in point.items()))
            upstream[dep.upstream] = ups
        else:
            for key, value in _carried(dep.upstream, ups[0], point).items():
                dims.setdefault(key, value)
        for output, param in dep.mapping.items():
            set_dotted(raw, param, "${" + upstream_name(dep.upstream, output) + "}")
            bindings.append(Binding(param, dep.upstream, output, tuple(u.key for u in ups), job.gather))
    interp = Interpolator(raw)
    params: dict[str, Any] = {}
    for name in raw:
        params[name] = _resolving(job, f"params.{name}", functools.partial(interp.param, name))
    command = _resolving(job, "run", lambda: _command(job, interp))
    env = _resolving(job, "env", lambda: {k: as_text(interp.resolve(v)) for k, v in job.env.items()})
    check_launchable(job, params, command, env)
    named = command
    command = _with_interpreter(job, command)
    key = instance_label(job.name, dims)
    config = {
        "kind": job.kind,
        # The interpreter is named, not its path: moving a virtualenv is no change.
        "command": [job.python or "python", *command[1:]] if isinstance(command, list) and command is not named
        else named,
        "shell": job.shell,
        "params": params,
        "env": env,
        "inputs": list(job.inputs),
        "outputs": list(job.outputs),
    }
    if choices:
        config["choices"] = dict(sorted(choices.items()))
    if job.metrics_from:
        config["metrics_from"] = list(job.metrics_from)
    if job.gather:
        # Gathered upstream values are lists: never the same work as one value, even from one instance.
        config["gather"] = True
    if job.depends_on:
        # The names, for people and for making the recorded config name-free again; the keys hold positions.
        config[UPSTREAM_KEY] = [dep.upstream for dep in job.depends_on]
    return JobInstance(
        key=key,
        job=job,
        point=point,
        raw_params=raw,
        params=params,
        command=command,
        env=env,
        upstream={name: tuple(u.key for u in ups) for name, ups in upstream.items()},
        bindings=tuple(bindings),
        config=config,
        dims=dims,
        static_used=_static_uses(references, raw),
        base_hash=base_hash(config),
        positions=positions(dep.upstream for dep in job.depends_on),
    )


def _with_interpreter(job: JobSpec, command: list[str] | str) -> list[str] | str:
    """`command` with a leading `python`/`python3` made the interpreter Mayuri runs under (or `python:`).

    A new object when it changed, the same one otherwise. With `shell: true` the first word of the
    shell command is replaced, so that `python train.py | tee log` works without an activated venv.
    """
    interpreter = job.python or sys.executable
    if isinstance(command, list):
        return [interpreter, *command[1:]] if command[0] in PYTHON_NAMES else command
    stripped = command.lstrip()
    head, sep, tail = stripped.partition(" ")
    return shlex.quote(interpreter) + sep + tail if head in PYTHON_NAMES else command


# The parts of a shard's or reduction's config that say which instance's group it belongs to (`of`, for
# `show` and the dashboard): `of` hashes every param of that instance, used or not, so it is no part of the key.
_GROUP_PARTS = ("shard", "reduction")


def base_hash(config: Mapping[str, Any], by_name: bool = False) -> str:
    """The hash of a job config without its params (what a cached run must share, whatever its name),
    its upstreams named by position (`by_name`: by name, as runs recorded before that were keyed)."""
    kept = {k: ({n: v for n, v in part.items() if n != "of"} if k in _GROUP_PARTS and isinstance(part, dict)
                else part)
            for k, part in config.items() if k not in ("params", UPSTREAM_KEY)}
    return hash_structure("job-base/v1", kept if by_name else name_free(kept, config_positions(config)))


def _job_references(job: JobSpec) -> frozenset[str]:
    """The param names the job's run, env and python refer to (the same for all its instances)."""
    names = references([job.run, list(job.env.values()), job.python or ""])
    # `${flags:NAME}` uses NAME; the built-ins are no params.
    return frozenset(n for n in (name.rpartition(":")[2] for name in names) if not n.startswith("mayuri."))


def _static_uses(names: frozenset[str], raw: Mapping[str, Any]) -> frozenset[str]:
    """The params written into the job's run, env or python (through other params too), by dotted name."""
    # The usual case, made cheap: the referenced params are numbers, or texts that refer to built-ins only.
    for name in names:
        value = raw.get(name.partition(".")[0])
        if isinstance(value, dict | list) or isinstance(value, str) and _refers_to_params(value):
            return _uses_through(names, raw)
    return names


@functools.lru_cache(maxsize=4096)
def _refers_to_params(text: str) -> bool:
    return any(not name.startswith("mayuri.") for name in references(text))


def _uses_through(names: frozenset[str], raw: Mapping[str, Any]) -> frozenset[str]:
    used: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop().rpartition(":")[2]
        if name.startswith("mayuri.") or name in used:
            continue
        used.add(name)
        try:
            value = _lookup_raw(raw, name)
        except KeyError:
            continue
        if not isinstance(value, int | float | bool) and value is not None:
            stack.extend(references(value))
    return frozenset(used)


def _lookup_raw(raw: Mapping[str, Any], name: str) -> Any:
    value: Any = raw
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(name)
        value = value[part]
    return value


def with_params(instance: JobInstance, changes: Mapping[str, Any]) -> JobInstance:
    """A copy of an instance with some params replaced and its params, command and env resolved again.

    Used for retries that change params (`retry.oom.scale`); the copy keeps the
    instance's key and config hash, so the run stays the one that was asked for.
    """
    raw = copy.deepcopy(instance.raw_params)
    for key, value in changes.items():
        set_dotted(raw, key, value)
    interp = Interpolator(raw)
    job = instance.job
    command = _with_interpreter(job, _command(job, interp))
    return dataclasses.replace(
        instance, raw_params=raw, params=interp.resolve(raw), command=command,
        env={k: as_text(interp.resolve(v)) for k, v in job.env.items()},
    )
