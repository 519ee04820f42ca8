"""Limits that a plan must respect before anything runs: its size, and values a process can be given.

A sweep is counted, never materialised, before it is expanded: 100 x 100 x
100 points would fill memory long before it was refused. A value with a NUL
byte cannot be an argument or an environment variable at all, and one over
the kernel's limit for a single argument (MAX_ARG_STRLEN, 128 KiB on Linux)
fails the launch with "Argument list too long": both are refused with the
place in the file where they come from.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from mayuri.errors import ExperimentError
from mayuri.experiment.spec import JobSpec

# Linux's MAX_ARG_STRLEN (32 pages of 4 KiB): the longest single argument or environment string.
MAX_ARG_BYTES = 32 * 4096
# How deep `pipeline:` files may include one another.
MAX_PIPELINE_DEPTH = 32


def _arg_max() -> int:
    try:
        return int(os.sysconf("SC_ARG_MAX"))
    except (ValueError, OSError):
        return 2 * 1024 * 1024


def _where(job: JobSpec, part: str) -> dict[str, Any]:
    at = job.at(part)
    return {"path": at.path, "line": at.line, "column": at.column}


def check_plan_size(counts: Mapping[str, int], jobs: Mapping[str, JobSpec], sweeps: Mapping[str, Mapping[str, int]],
                    limit: int) -> None:
    """Refuse a plan of more than `limit` job instances, naming the job and sweep that make it."""
    total = sum(counts.values())
    if total <= limit:
        return
    name = max(counts, key=lambda n: counts[n])
    axes = sweeps.get(name, {})
    made = " x ".join(f"{key} ({size})" for key, size in axes.items()) or "its upstream jobs' instances"
    raise ExperimentError(
        f"the plan would make {total:,} job instances, more than [scheduler] max_plan ({limit:,}); job "
        f"'{name}' alone makes {counts[name]:,}, from {made}.",
        **_where(jobs[name], "sweep" if axes else "depends_on"),
        hint="Narrow the sweep (fewer values, or zip keys that go together: \"lr,batch_size\": [[...], ...]), "
        "sweep on the command line (KEY=a,b), run part of it with --only, or raise [scheduler] max_plan "
        "in mayuri.toml.",
    )


def grid_size(sizes: Iterable[int]) -> int:
    """The number of points of a grid with these axis sizes."""
    return math.prod(sizes)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def check_launchable(job: JobSpec, params: Mapping[str, Any], command: list[str] | str,
                     env: Mapping[str, str]) -> None:
    """Refuse params, a command or an env that no process could be started with."""
    for name, value in params.items():
        for text in _strings(value):
            if "\0" in text:
                raise ExperimentError(
                    f"job '{job.name}', params.{name}: the value contains a NUL byte, which no command "
                    "argument or environment variable can hold.", **_where(job, f"params.{name}"),
                    hint="Remove the NUL (\\0) from the value; pass binary data through a file instead.",
                )
            if len(text.encode("utf-8", "surrogateescape")) >= MAX_ARG_BYTES:
                raise ExperimentError(
                    f"job '{job.name}', params.{name}: the value is {len(text):,} characters, longer than the "
                    f"system allows for one command argument ({MAX_ARG_BYTES // 1024} KiB).",
                    **_where(job, f"params.{name}"),
                    hint="Put large values in a file and pass its path as the param.",
                )
    tokens = [command] if isinstance(command, str) else command
    pieces = [*tokens, *(f"{k}={v}" for k, v in env.items())]
    part = "run"
    for text in pieces:
        if "\0" in text or len(text.encode("utf-8", "surrogateescape")) >= MAX_ARG_BYTES:
            raise ExperimentError(
                f"job '{job.name}': its command or env has a value with a NUL byte or longer than the "
                f"system allows for one argument ({MAX_ARG_BYTES // 1024} KiB).", **_where(job, part),
                hint="Put large values in a file and pass its path; remove NUL bytes.",
            )
    total = sum(len(t.encode("utf-8", "surrogateescape")) + 1 for t in pieces)
    if total > _arg_max() // 2:
        raise ExperimentError(
            f"job '{job.name}': its command and env come to {total:,} bytes, more than half of what the "
            f"system allows for a new process ({_arg_max():,}).", **_where(job, part),
            hint="Put large values in a file and pass its path as the param.",
        )
