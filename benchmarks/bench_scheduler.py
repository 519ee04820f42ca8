"""Scheduler overhead: 500 trivial jobs (`true`) through `mayuri run` against the same 500 spawned raw.

Both sides run at the same parallelism, in the same process, one after the
other, so that the ratio compares like with like on whatever machine runs it.
The raw side is the floor: fork/exec of `true` and a wait, nothing recorded.
The scheduler side does everything a real run does (cache check, run
records, run folder, attempt rows, closure, fingerprint). Target: at most
1.25x. Usage: python benchmarks/bench_scheduler.py [--jobs 500] [--parallel 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mayuri.init_project import init_project
from mayuri.run_experiment import RunRequest, run_experiment
from mayuri.scheduler.events import SilentReporter


def raw(jobs: int, parallel: int) -> float:
    """Spawn `true` `jobs` times, at most `parallel` at once, each in its own session like the scheduler."""
    began = time.perf_counter()
    # Popen objects are kept: one dropped while running would be reaped behind os.wait's back.
    running: dict[int, subprocess.Popen[bytes]] = {}
    started = 0
    while started < jobs or running:
        while started < jobs and len(running) < parallel:
            proc = subprocess.Popen(["true"], stdin=subprocess.DEVNULL, start_new_session=True)
            running[proc.pid] = proc
            started += 1
        pid, status = os.wait()
        running.pop(pid).returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - began


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)
        raw_s = raw(args.jobs, args.parallel)
        sched_s = scheduled(args.jobs, args.parallel, root)
    ratio = sched_s / raw_s
    print(f"{args.jobs} trivial jobs, {args.parallel} at a time")
    print(f"raw spawn:  {raw_s:7.2f} s  ({raw_s / args.jobs * 1000:.2f} ms/job)")
    print(f"scheduler:  {sched_s:7.2f} s  ({sched_s / args.jobs * 1000:.2f} ms/job)")
    print(f"ratio:      {ratio:7.2f}x  (target <= 1.25x) {'OK' if ratio <= 1.25 else 'OVER TARGET'}")
    sys.exit(0)


if __name__ == "__main__":
    main()
