"""Preparing one attempt of a run: its folder, params.json, environment and final command."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayuri.closure import closure_env
from mayuri.experiment.expand import JobInstance, upstream_name
from mayuri.experiment.interpolate import Interpolator, as_text
from mayuri.job import PARAMS_FILE
from mayuri.store.perms import make_dirs


@dataclass(frozen=True)
class Launch:
    """Everything needed to start a process for an attempt."""

    command: list[str] | str
    env: dict[str, str]
    params: dict[str, Any]
    run_dir: Path
    closure_dir: Path


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


def prepare(
    instance: JobInstance,
    *,
    run_id: str,
    run_dir: Path,
    store_root: Path,
    project_root: Path,
    attempt: int,
    upstream: Mapping[str, Any],
) -> Launch:
    """Resolve the run-time built-ins into params and command, write params.json, build the env."""
    make_dirs(run_dir, store_root)
    closure_dir = make_dirs(run_dir / "closure" / str(attempt), store_root)
    builtins = {
        "mayuri.run_dir": str(run_dir),
        "mayuri.project_root": str(project_root),
        "mayuri.run_id": run_id,
        **upstream,
    }
    params = Interpolator(instance.raw_params, builtins).resolve(instance.raw_params)
    # The command was resolved with the built-ins left symbolic; fill them in now.
    command: list[str] | str
    if isinstance(instance.command, str):
        command = _fill(instance.command, builtins, quote=True)
    else:
        command = [_fill(token, builtins, quote=False) for token in instance.command]
    with open(run_dir / PARAMS_FILE, "w", encoding="utf-8") as handle:
        json.dump(params, handle, indent=2, sort_keys=True)
    env = dict(os.environ)
    env.update({k: _fill(v, builtins, quote=False) for k, v in instance.env.items()})
    env.update(
        {
            "MAYURI_RUN_ID": run_id,
            "MAYURI_RUN_DIR": str(run_dir),
            "MAYURI_STORE": str(store_root),
            "MAYURI_ATTEMPT": str(attempt),
            "MAYURI_PROJECT_ROOT": str(project_root),
        }
    )
    env = closure_env(env, closure_dir, project_root, [store_root])
    return Launch(command=command, env=env, params=params, run_dir=run_dir, closure_dir=closure_dir)


def _fill(text: str, builtins: Mapping[str, Any], quote: bool) -> str:
    for name, value in builtins.items():
        placeholder = "${" + name + "}"
        if placeholder in text:
            rendered = as_text(value)
            text = text.replace(placeholder, shlex.quote(rendered) if quote else rendered)
    return text
