"""Sharded jobs: the cost of scheduling shards, and of a rerun after one data file changed.

1. `--shards` shards of a trivial evaluation (`true`) through the real
   `mayuri run` command (a subprocess, interpreter start included), against
   the same processes spawned raw with their run-folder files (a folder, a
   params file, two log files; `bench_scheduler.raw_with_files`), at the same
   parallelism, interleaved in the same run. Target: at most 1.5x.
2. A sharded evaluation over `--files` data files (`shards: {files: ...,
   count: --file-shards}`): after one file is edited, `mayuri run` must
   launch only the shard that holds it (checked), and the whole command must
   take under 2x the all-cached command plus that one process (the raw spawn
   of one job with its files).

Each figure is the median of `--rounds` rounds.
Usage: python benchmarks/bench_shards.py [--shards 1000] [--files 1000] [--file-shards 100]
       [--parallel 4] [--rounds 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scheduler import measured, raw_with_files
from timing import machine_line


def _project(root: Path, parallel: int, experiment: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "mayuri.toml").write_text(f"[scheduler]\nmax_parallel = {parallel}\n")
    done = subprocess.run([sys.executable, "-m", "mayuri", "init"], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"mayuri init failed: {done.stderr}")
    exp = root / "exp.yaml"
    exp.write_text(experiment)
    return exp


def mayuri_run(root: Path) -> tuple[float, str]:
    """(seconds, stderr) of `mayuri run exp.yaml` in `root`; exits when it fails."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mayuri", "run", "exp.yaml"], cwd=root, capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200"})
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"mayuri run failed in {root}:\n{done.stderr[-2000:]}")
    return elapsed, done.stderr


def scheduled_shards(shards: int, parallel: int, root: Path) -> float:
    _project(root, parallel, f"name: bench\njobs:\n  ev:\n    run: \"true\"\n    shards: {shards}\n")
    elapsed, err = mayuri_run(root)
    if f"{shards + 1} jobs: {shards + 1} succeeded" not in err:
        raise SystemExit(f"expected {shards} shards and a reduction to succeed:\n{err[-2000:]}")
    return elapsed


def file_rerun(files: int, shards: int, parallel: int, root: Path, rounds: int) -> tuple[float, float, float]:
    """(first run, median all-cached run, median rerun after one edit) seconds; checks one launch per edit."""
    data = root / "data"
    data.mkdir(parents=True)
    for number in range(files):
        (data / f"part-{number:04d}.jsonl").write_text(json.dumps({"x": number}) + "\n")
    _project(root, parallel, "name: bench\njobs:\n  ev:\n    run: \"true\"\n"
                             f"    shards: {{files: \"data/*.jsonl\", count: {shards}}}\n")
    first, _ = mayuri_run(root)
    cached = [mayuri_run(root)[0] for _ in range(rounds)]
    edits = []
    for number in range(rounds):
        path = data / f"part-{number * 7 % files:04d}.jsonl"
        path.write_text(json.dumps({"x": -1 - number}) + "\n")
        elapsed, err = mayuri_run(root)
        launched = err.count(" running ")
        if launched != 1 or f"{path.relative_to(root)} changed" not in err:
            raise SystemExit(f"editing {path.name} launched {launched} processes, not 1:\n{err[-2000:]}")
        edits.append(elapsed)
    return first, statistics.median(cached), statistics.median(edits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--file-shards", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary projects go (default: $TMPDIR)")
    args = parser.parse_args()
    filed: list[tuple[float, float]] = []
    scheds: list[tuple[float, float]] = []
    here = os.getcwd()
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            root = Path(tmp)
            os.chdir(root)
            (root / "raw").mkdir()
            filed.append(measured(lambda root=root: raw_with_files(args.shards, args.parallel, root / "raw")))
            scheds.append(measured(lambda root=root: scheduled_shards(args.shards, args.parallel, root / "p")))
            os.chdir(here)
        print(f"round {number + 1}: raw with files {filed[-1][0]:.2f} s, mayuri run {scheds[-1][0]:.2f} s",
              file=sys.stderr)
    filed_s, filed_cpu = (statistics.median(v) for v in zip(*filed, strict=True))
    sched_s, sched_cpu = (statistics.median(v) for v in zip(*scheds, strict=True))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        ones = []
        for number in range(5):
            folder = Path(tmp) / f"one-{number}"
            folder.mkdir()
            ones.append(raw_with_files(1, 1, folder))
        one = statistics.median(ones)
        first, cached, edit = file_rerun(args.files, args.file_shards, args.parallel, Path(tmp) / "files",
                                         args.rounds)
    ratio = sched_s / filed_s
    limit = 2 * cached + one
    print(f"{args.shards} trivial shards, {args.parallel} at a time, median of {args.rounds} rounds; {machine_line()}")
    print(f"raw spawn with files:  {filed_s:7.2f} s  (cpu {filed_cpu:.2f} s)")
    print(f"mayuri run (shards):   {sched_s:7.2f} s  (cpu {sched_cpu:.2f} s)")
    print(f"ratio to raw w/ files: {ratio:7.2f}x  (target <= 1.5x) {'OK' if ratio <= 1.5 else 'OVER TARGET'}"
          f"   cpu ratio {sched_cpu / filed_cpu:.2f}x")
    print(f"{args.files} files over {args.file_shards} shards: first run {first:.2f} s, all cached {cached:.3f} s, "
          f"one process {one * 1e3:.1f} ms")
    print(f"rerun after one edit:  {edit:7.3f} s  (one shard launched; limit 2 x cached + one process = "
          f"{limit:.3f} s) ratio {edit / limit:.2f} {'OK' if edit <= limit else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
