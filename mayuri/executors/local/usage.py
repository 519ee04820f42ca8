"""System metrics of running jobs: CPU %, RSS and GPU memory of each job's process tree.

Sampled every few seconds with psutil (and NVML per-process GPU memory
through `mayuri.gpu`), kept as each attempt's peaks and stored as ordinary
metrics with keys `sys/cpu_percent`, `sys/rss_bytes`, `sys/gpu_memory_bytes`.
Sampling never stops a job and never fails the scheduler: a process that
vanishes between two reads is simply not counted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil

from mayuri.executors.base import Usage
from mayuri.executors.local.process import JobProcess

SAMPLE_INTERVAL_ENV = "MAYURI_SAMPLE_INTERVAL"
DEFAULT_SAMPLE_INTERVAL = 3.0
# The first sample comes early so that short jobs are measured at least once.
FIRST_SAMPLE_AFTER = 0.5


def sample_interval() -> float:
    """Seconds between two samples of a running job."""
    try:
        return max(0.1, float(os.environ.get(SAMPLE_INTERVAL_ENV, DEFAULT_SAMPLE_INTERVAL)))
    except ValueError:
        return DEFAULT_SAMPLE_INTERVAL


@dataclass
class Sampler(Usage):
    """The sampling state of one attempt's process tree."""

    job: JobProcess
    next_at: float = field(default_factory=lambda: time.monotonic() + FIRST_SAMPLE_AFTER)
    step: int = 0
    peak_rss: int = 0
    peak_gpu: int = 0
    _procs: dict[int, psutil.Process] = field(default_factory=dict)

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def sample(self, gpu_memory: Mapping[int, int], now: float) -> list[tuple[str, int, float, float]]:
        """Read the tree once; returns the metric points (key, step, value, logged_at)."""
        self.next_at = now + sample_interval()
        try:
            root = psutil.Process(self.job.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        cpu = 0.0
        rss = 0
        gpu = 0
        seen = {}
        for proc in tree:
            # Keep the Process objects: cpu_percent measures since the previous call on the same object.
            known = self._procs.get(proc.pid, proc)
            try:
                cpu += known.cpu_percent(None)
                rss += known.memory_info().rss
            except psutil.Error:
                continue
            seen[proc.pid] = known
            gpu += gpu_memory.get(proc.pid, 0)
        self._procs = seen
        self.job.descendants.update(pid for pid in seen if pid != self.job.pid)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_gpu = max(self.peak_gpu, gpu)
        logged = time.time()
        self.step += 1
        points = [("sys/cpu_percent", self.step, cpu, logged), ("sys/rss_bytes", self.step, float(rss), logged)]
        if gpu_memory:
            points.append(("sys/gpu_memory_bytes", self.step, float(gpu), logged))
        return points
