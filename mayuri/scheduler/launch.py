"""Preparing one attempt of a run: its params, environment and command, then its folder.

Two steps: `plan_launch` works out the params, command and environment
without touching the disk; `make_files` makes the run folder and writes
params.json (file creations are, on some disks, the largest part of a
trivial job's launch: the executor opens the two log files, once, as it
starts the job). The closure folder
is not made here: the closure hook makes it when a tracked process first
reports into it, so a job that runs no Python costs none. It starts no
process and writes nothing to the store.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayuri.closure import closure_env
from mayuri.closure.launch import tracer_library, with_tracer
from mayuri.experiment.expand import JobInstance, upstream_name
from mayuri.experiment.interpolate import Interpolator, as_text
from mayuri.job import PARAMS_FILE, PARAMS_VAR
from mayuri.run_contract import (
    ATTEMPT_VAR,
    PROJECT_ROOT_VAR,
    RUN_DIR_VAR,
    RUN_ID_VAR,
    STORE_VAR,
    closure_dir,
)
from mayuri.sharding import FILES_VAR, SHARD_VAR, SHARDS_VAR
from mayuri.store.perms import make_dirs, share_like_folder


@dataclass(frozen=True)
class Launch:
    """Everything needed to start a process for an attempt."""

    command: list[str] | str
    env: dict[str, str]
    params: dict[str, Any]
    run_dir: Path
    closure_dir: Path
    attempt: int


def upstream_values(instance: JobInstance, outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The upstream outputs an instance consumes, by built-in name (lists for gather)."""
    values: dict[str, Any] = {}
    for binding in instance.bindings:
        got = []
        for key in binding.instances:
            produced = outputs.get(key, {})
            if binding.output not in produced:
                raise KeyError(f"upstream {key} did not set output '{binding.output}'")
            got.append(produced[binding.output])
        values[upstream_name(binding.upstream_job, binding.output)] = got if binding.gather else got[0]
    return values


# Larger params are read from params.json by `mayuri.params()` (then all of them count).
MAX_PARAMS_VAR = 64 * 1024

# The variable naming the folder the closure hook reports into (see mayuri/closure/site).
CLOSURE_DIR_VAR = "MAYURI_CLOSURE_DIR"


def make_run_folder(run_dir: Path, store_root: Path) -> None:
    """Make the run folder (on its first attempt), shared like the store."""
    try:
        os.mkdir(run_dir)
    except FileExistsError:
        return
    except FileNotFoundError:
        # The store's runs folder itself is gone: make the whole chain.
        make_dirs(run_dir, store_root)
        return
    if os.stat(store_root).st_mode & stat.S_IWGRP:
        share_like_folder(run_dir, store_root)


@functools.lru_cache(maxsize=64)
def _closure_vars(pythonpath: str | None, project_root: Path, store_root: Path) -> tuple[tuple[str, str], ...]:
    """What `closure_env` sets for a job with this PYTHONPATH, except the closure folder.

    Those depend only on the PYTHONPATH, the project and the store, so they
    are worked out (with their realpath walks) once per scheduler. The store
    root stands in for the closure folder: it exists, so nothing is made.
    """
    base = {} if pythonpath is None else {"PYTHONPATH": pythonpath}
    full = closure_env(base, store_root, project_root, [store_root], store_root / "runs")
    return tuple((k, v) for k, v in full.items() if k != CLOSURE_DIR_VAR and base.get(k) != v)


def plan_launch(
    instance: JobInstance,
    *,
    run_id: str,
    run_dir: Path,
    store_root: Path,
    project_root: Path,
    attempt: int,
    upstream: Mapping[str, Any],
    base_env: Mapping[str, str] | None = None,
) -> Launch:
    """Resolve the run-time built-ins into params and command, and build the env; touches no file.

    `base_env` is the environment jobs inherit (this process's, read once by
    the caller when it launches many).
    """
    records = closure_dir(run_dir, attempt)
    run_dir_text = str(run_dir)
    shard = instance.config.get("shard") or {}
    builtins = {
        "mayuri.run_dir": run_dir_text,
        "mayuri.project_root": str(project_root),
        "mayuri.run_id": run_id,
        # A job that is not sharded is the one shard of one.
        "mayuri.shard": shard.get("index", 0),
        "mayuri.shards": shard.get("count", 1),
        **upstream,
    }
    params = Interpolator(instance.raw_params, builtins).resolve(instance.raw_params)
    # The command was resolved with the built-ins left symbolic; fill them in now.
    command: list[str] | str
    if isinstance(instance.command, str):
        command = _fill(instance.command, builtins, quote=True)
    else:
        command = [_fill(token, builtins, quote=False) for token in instance.command]
    env = dict(os.environ if base_env is None else base_env)
    if instance.env:
        env.update({k: _fill(v, builtins, quote=False) for k, v in instance.env.items()})
    params_text = json.dumps(params, sort_keys=True)
    if len(params_text) <= MAX_PARAMS_VAR:
        env[PARAMS_VAR] = params_text
    else:
        env.pop(PARAMS_VAR, None)
    env[RUN_ID_VAR] = run_id
    env[RUN_DIR_VAR] = run_dir_text
    env[STORE_VAR] = str(store_root)
    env[ATTEMPT_VAR] = str(attempt)
    env[PROJECT_ROOT_VAR] = str(project_root)
    if shard:
        env[SHARD_VAR], env[SHARDS_VAR] = str(shard["index"]), str(shard["count"])
        if "files" in shard:
            env[FILES_VAR] = json.dumps(shard["files"])
    else:
        # Not inherited from a `mayuri run` started inside a shard.
        for name in (SHARD_VAR, SHARDS_VAR, FILES_VAR):
            env.pop(name, None)
    env.update(_closure_vars(env.get("PYTHONPATH"), project_root, store_root))
    tracer = tracer_library()
    if tracer is not None:
        with_tracer(env, tracer)
    env[CLOSURE_DIR_VAR] = os.path.abspath(records)
    if instance.job.metrics_from:
        from mayuri.tracking.stdout_metrics import wrap

        # The closure folder goes to the command, not to the wrapper: the wrapper is not the job.
        command = wrap(command, instance.job.metrics_from, env.pop(CLOSURE_DIR_VAR))
    return Launch(command=command, env=env, params=params, run_dir=run_dir, closure_dir=records, attempt=attempt)


def make_files(launch: Launch, store_root: Path) -> None:
    """Make the run folder and write params.json; the executor opens the log files as it starts the job."""
    make_run_folder(launch.run_dir, store_root)
    fd = os.open(launch.run_dir / PARAMS_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_TRUNC, 0o666)
    try:
        os.write(fd, json.dumps(launch.params, indent=2, sort_keys=True).encode("utf-8"))
    finally:
        os.close(fd)


def _fill(text: str, builtins: Mapping[str, Any], quote: bool) -> str:
    for name, value in builtins.items():
        placeholder = "${" + name + "}"
        if placeholder in text:
            rendered = as_text(value)
            text = text.replace(placeholder, shlex.quote(rendered) if quote else rendered)
    return text
