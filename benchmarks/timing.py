"""Small timing helpers shared by the benchmark scripts in this folder.

Wall-clock figures on a shared machine are noisy, so every figure is the
median of several repetitions, and the things compared are measured
interleaved in the same run. CPU time (user + system) is kept beside wall
time: it hardly moves when other processes compete for the cores, so it tells
a slow machine from a slow program. This module only measures and formats;
it never decides whether a target is met.
"""

from __future__ import annotations

import os
import random
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Samples:
    """Repeated timings of one thing, in seconds."""

    name: str
    values: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def best(self) -> float:
        return min(self.values)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def line(self) -> str:
        return (f"{self.name:<44} median {self.median * 1e3:8.2f} ms"
                f"   (best {self.best * 1e3:7.2f}; cpu {self.cpu_median * 1e3:7.2f} ms; n={len(self.values)})")


def time_call(func: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call of `func`."""
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return time.perf_counter() - wall, time.process_time() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    """(wall seconds start to exit, CPU seconds, result with output captured) of one command."""
    cpu = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run(list(argv), cwd=cwd, env=dict(env), capture_output=True)
    return time.perf_counter() - began, _children_cpu() - cpu, done


def interleave(
    commands: Mapping[str, Callable[[], tuple[float, float]]], repeat: int, shuffle: bool = False
) -> dict[str, Samples]:
    """Run each measurement once per round, `repeat` rounds, so that load changes hit all alike.

    With `shuffle`, each round runs them in a new order (the same orders on
    every run of the script): a process started right after another one runs
    measurably slower or faster than its place in a fixed order would say.
    """
    samples = {name: Samples(name) for name in commands}
    order = list(commands)
    rounds = random.Random(20260101)
    for _ in range(repeat):
        if shuffle:
            rounds.shuffle(order)
        for name in order:
            wall, cpu = commands[name]()
            samples[name].values.append(wall)
            samples[name].cpu.append(cpu)
    return samples


def machine_line() -> str:
    """One line describing where the figures were taken."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"cpus: {os.cpu_count()}, load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"
