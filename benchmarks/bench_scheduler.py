"""Scheduler overhead: 500 trivial jobs (`true`) through `mayuri run` against the same 500 spawned raw.

All sides run at the same parallelism, in the same process, interleaved
(raw, raw with files, scheduled, raw, ...) so that the ratios compare like
with like on whatever machine runs it, and a change of load hits all alike.
The raw side is the floor: fork/exec of `true` and a wait, nothing recorded.
The "raw with files" side adds, per job, what any tool that keeps a job's
output must do on disk: a folder, a small params file and two log files
that receive the job's stdout and stderr (the four file creations of a
Mayuri run folder), so that the cost of the filesystem is told apart from
the scheduler's own. The scheduler side does everything a real run does
(cache check, run records, run folder, attempt rows, closure, fingerprint).
Each side's figure is the median of the rounds; the CPU time (this process
and its children) is printed too, as it moves less than wall time when
others load the machine. `--dir` chooses where the projects live (the
filesystem matters: on some disks a file creation costs a good part of a
millisecond of kernel time). Target: at most 1.25x raw.
Usage: python benchmarks/bench_scheduler.py [--jobs 500] [--parallel 4] [--rounds 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mayuri.init_project import init_project
from mayuri.run_experiment import RunRequest, run_experiment
from mayuri.scheduler.events import SilentReporter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import machine_line


def _spawn_all(jobs: int, parallel: int, start: Callable[[int], subprocess.Popen[bytes]]) -> float:
    """Start job 0..jobs-1 with `start`, at most `parallel` at once; seconds until all have ended."""
    began = time.perf_counter()
    # Popen objects are kept: one dropped while running would be reaped behind os.wait's back.
    running: dict[int, subprocess.Popen[bytes]] = {}
    started = 0
    while started < jobs or running:
        while started < jobs and len(running) < parallel:
            proc = start(started)
            running[proc.pid] = proc
            started += 1
        pid, status = os.wait()
        running.pop(pid).returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - began


def raw(jobs: int, parallel: int) -> float:
    """Spawn `true` `jobs` times, at most `parallel` at once, each in its own session like the scheduler."""
    return _spawn_all(jobs, parallel, lambda _: subprocess.Popen(["true"], stdin=subprocess.DEVNULL,
                                                                 start_new_session=True))


def raw_with_files(jobs: int, parallel: int, root: Path,
                   argv: Callable[[int, Path], list[str]] = lambda number, folder: ["true"]) -> float:
    """Like `raw`, each job with a folder, a params file, and its stdout and stderr in two files there.

    `argv(number, folder)` is job `number`'s command (by default `true`).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC

    def start(number: int) -> subprocess.Popen[bytes]:
        folder = root / f"job-{number}"
        folder.mkdir()
        (folder / "params.json").write_text(f'{{"i": {number}}}')
        out = os.open(folder / "stdout.log", flags, 0o666)
        err = os.open(folder / "stderr.log", flags, 0o666)
        try:
            return subprocess.Popen(argv(number, folder), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
        finally:
            os.close(out)
            os.close(err)

    return _spawn_all(jobs, parallel, start)


def scheduled(jobs: int, parallel: int, root: Path) -> float:
    (root / "mayuri.toml").write_text(f"[scheduler]\nmax_parallel = {parallel}\n")
    init_project(root)
    values = ", ".join(str(i) for i in range(jobs))
    exp = root / "bench.yaml"
    exp.write_text(f"name: bench\njobs:\n  noop:\n    run: \"true\"\n    params: {{i: 0}}\n    sweep: {{i: [{values}]}}\n")
    began = time.perf_counter()
    result = run_experiment(RunRequest(file=exp), SilentReporter(), root=root)
    elapsed = time.perf_counter() - began
    if not result.ok or result.outcome.count("succeeded") != jobs:
        raise SystemExit(f"the scheduled run did not succeed: {result.outcome.count('succeeded')} of {jobs}")
    return elapsed


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(run: Callable[[], float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) of one side."""
    cpu = _cpu()
    wall = run()
    return wall, _cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary projects go (default: $TMPDIR)")
    args = parser.parse_args()
    raws: list[tuple[float, float]] = []
    filed: list[tuple[float, float]] = []
    scheds: list[tuple[float, float]] = []
    here = os.getcwd()
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            root = Path(tmp)
            os.chdir(root)
            (root / "raw").mkdir()
            (root / "project").mkdir()
            raws.append(measured(lambda: raw(args.jobs, args.parallel)))
            filed.append(measured(lambda root=root: raw_with_files(args.jobs, args.parallel, root / "raw")))
            scheds.append(measured(lambda root=root: scheduled(args.jobs, args.parallel, root / "project")))
            os.chdir(here)
    raw_s, raw_cpu = (statistics.median(v) for v in zip(*raws, strict=True))
    filed_s, filed_cpu = (statistics.median(v) for v in zip(*filed, strict=True))
    sched_s, sched_cpu = (statistics.median(v) for v in zip(*scheds, strict=True))
    ratio = sched_s / raw_s
    per = 1000 / args.jobs
    print(f"{args.jobs} trivial jobs, {args.parallel} at a time, median of {args.rounds} rounds; {machine_line()}")
    print(f"projects in {args.dir or tempfile.gettempdir()}")
    print(f"raw spawn:             {raw_s:7.2f} s  ({raw_s * per:.2f} ms/job; cpu {raw_cpu * per:.2f} ms/job)")
    print(f"raw spawn with files:  {filed_s:7.2f} s  ({filed_s * per:.2f} ms/job; cpu {filed_cpu * per:.2f} ms/job)")
    print(f"scheduler:             {sched_s:7.2f} s  ({sched_s * per:.2f} ms/job; cpu {sched_cpu * per:.2f} ms/job)")
    print(f"ratio to raw:          {ratio:7.2f}x  (target <= 1.25x) {'OK' if ratio <= 1.25 else 'OVER TARGET'}"
          f"   cpu ratio {sched_cpu / raw_cpu:.2f}x")
    print(f"ratio to raw w/ files: {sched_s / filed_s:7.2f}x   cpu ratio {sched_cpu / filed_cpu:.2f}x"
          f"   (files alone: {filed_s / raw_s:.2f}x raw)")
    sys.exit(0)


if __name__ == "__main__":
    main()
