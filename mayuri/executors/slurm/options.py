"""`[executor.slurm]` read and checked, and a job's resources turned into its sbatch request.

Pure: no submitit, no Slurm command. The keys:

- `partition`, `account`, `qos`: passed as they are (`--partition`, ...);
- `time`: the time limit of a job that sets no `timeout` (a duration, `4h`;
  default: the partition's default time);
- `folder`: submitit's folder (its sbatch files, pickles and own logs), on a
  filesystem the nodes share; default `<store>/slurm`;
- `setup`: shell lines run on the node before the job (module loads, venv activation);
- `additional`: any other sbatch option, `{"mail-type": "END"}`;
- `array`: `true` submits the instances of one job that start together (a
  sweep) as one job array; `false` (the default) one Slurm job per instance;
- `array_parallelism`: at most this many tasks of one array run at once (default 256).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayuri.errors import ConfigError
from mayuri.suggest import did_you_mean
from mayuri.units import parse_duration

KEYS = ("partition", "account", "qos", "time", "folder", "setup", "additional", "array", "array_parallelism")
# What a ConfigError about the table suggests.
HINT = ('For example:\n[executor.slurm]\npartition = "gpu"\ntime = "4h"\nfolder = "/shared/mayuri-slurm"\n'
        'setup = ["module load cuda", "source /shared/venv/bin/activate"]')
# A job's own `timeout` is enforced by the head; Slurm's limit is a little later, as a backstop.
MARGIN = 60.0
# submitit asks Slurm for SIGUSR2 90 s before the time limit (`--signal=USR2@90`, sent up to a minute
# earlier still, to every process of the job), and answers it by requeueing or raising: a job whose
# limit is under that would be killed by it at its start, before anything could ignore it. The time
# limit ends a Mayuri job by SIGTERM, through its runner; the warning goes to the batch shell only,
# as a signal whose default is to be ignored.
NO_WARNING = "B:URG@1"


@dataclass(frozen=True)
class SlurmSettings:
    """The `[executor.slurm]` table, checked."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: float | None = None
    folder: Path | None = None
    setup: tuple[str, ...] = ()
    additional: dict[str, Any] = field(default_factory=dict)
    array: bool = False
    array_parallelism: int = 256


def _fail(message: str) -> ConfigError:
    return ConfigError(f"[executor.slurm] {message}", hint=HINT)


def _text(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(f"{key} must be a name (text), not {value!r}.")
    return value


def parse_settings(table: Mapping[str, Any] | None) -> SlurmSettings:
    """The settings of `[executor.slurm]`; ConfigError (exit 2) for an unknown key or a wrong value."""
    table = dict(table or {})
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise _fail(f"unknown key '{unknown[0]}' in mayuri.toml — {did_you_mean(unknown[0], KEYS)}")
    time = None
    if table.get("time") is not None:
        try:
            time = parse_duration(table["time"])
        except ValueError as exc:
            raise _fail(f"time: {exc}.") from None
    setup = table.get("setup") or []
    if isinstance(setup, str):
        setup = [setup]
    if not isinstance(setup, list) or not all(isinstance(line, str) for line in setup):
        raise _fail("setup must be a list of shell lines.")
    additional = table.get("additional") or {}
    if not isinstance(additional, Mapping):
        raise _fail('additional must be a table of sbatch options, like {"mail-type" = "END"}.')
    array = table.get("array", False)
    if not isinstance(array, bool):
        raise _fail(f"array must be true or false, not {array!r}.")
    parallelism = table.get("array_parallelism", 256)
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
        raise _fail(f"array_parallelism must be a number of tasks (1 or more), not {parallelism!r}.")
    folder = table.get("folder")
    if folder is not None and not isinstance(folder, str):
        raise _fail(f"folder must be a path, not {folder!r}.")
    return SlurmSettings(
        partition=_text(table, "partition"), account=_text(table, "account"), qos=_text(table, "qos"),
        time=time, folder=Path(folder).expanduser() if folder else None, setup=tuple(setup),
        additional={str(k): v for k, v in additional.items()}, array=array, array_parallelism=parallelism,
    )


def slurm_time(seconds: float) -> str:
    """A time limit as sbatch reads it (`M:SS`; Slurm counts whole minutes at most, seconds round up)."""
    whole = max(1, math.ceil(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _megabytes(size: int) -> str:
    return f"{max(1, math.ceil(size / 2**20))}M"


def sbatch_parameters(settings: SlurmSettings, resources: Mapping[str, Any], timeout: float | None,
                      job_name: str) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters for one job (or array): the table's, then the job's resources.

    `gpus` -> `--gpus-per-node`, `cpus` -> `--cpus-per-task`, `memory` ->
    `--mem`, `labels` -> `--constraint` (joined with `&`: all of them). The
    time limit is the job's `timeout` (plus a margin: the head stops it on
    time; Slurm's limit is the backstop for a head that died), else `time`.
    """
    params: dict[str, Any] = {"job_name": f"mayuri-{job_name}"[:64]}
    for key in ("partition", "account", "qos"):
        value = getattr(settings, key)
        if value is not None:
            params[key] = value
    additional = {"signal": NO_WARNING, **settings.additional}
    limit = timeout + MARGIN if timeout else settings.time
    if limit is not None:
        # submitit's own `time` counts whole minutes: the exact limit goes in as an sbatch option.
        additional.setdefault("time", slurm_time(limit))
    gpus = resources.get("gpus") or 0
    if gpus:
        params["gpus_per_node"] = int(math.ceil(gpus))
    cpus = resources.get("cpus")
    if cpus:
        params["cpus_per_task"] = int(math.ceil(cpus))
    memory = resources.get("memory")
    if memory:
        params["mem"] = _megabytes(int(memory))
    labels = resources.get("labels")
    if labels:
        params["constraint"] = "&".join([labels] if isinstance(labels, str) else list(labels))
    if settings.setup:
        params["setup"] = list(settings.setup)
    if additional:
        params["additional_parameters"] = additional
    return params


def array_key(job: str, parameters: Mapping[str, Any]) -> tuple[str, str]:
    """What attempts must share to go in one array: their job and their sbatch request."""
    return job, repr(sorted(parameters.items()))
