"""Sharded jobs: the cost of scheduling shards, and of a rerun after one data file changed.

1. `--shards` shards of a trivial evaluation through the real `mayuri run`
   command (a subprocess, interpreter start included), against the same
   processes spawned raw with their run-folder files (a folder, a params
   file, two log files; `bench_scheduler.raw_with_files`), at the same
   parallelism, interleaved in the same run. Target: at most 1.5x. Two
   evaluations, each its own figure:
   - `true`: no work at all, so the figure is the scheduler's own cost per
     shard against a bare fork/exec (the harshest reading);
   - a trivial Python evaluation (this script's `EVALUATION`): each shard
     takes its part of 10,000 numbers with `mayuri.shard_of`, sums it and
     sets it with `mayuri.output`, and the job reduces the shards' sums;
     raw runs the same interpreter on the same arithmetic, writing its sum
     to a JSON file, with no Mayuri at all. This one counts what Mayuri adds
     inside every job too (the in-job API, the closure hook and tracer).
2. A sharded evaluation over `--files` data files (`shards: {files: ...,
   count: --file-shards}`): after one file is edited, `mayuri run` must
   launch only the shard that holds it (checked), and the whole command must
   take under 2x the all-cached command plus that one process (the raw spawn
   of one job with its files).

Each figure is the median of `--rounds` rounds. PYTHONDONTWRITEBYTECODE is
unset for every side: with it, each Python job would compile its imports
again, which no user's job does.
Usage: python benchmarks/bench_shards.py [--shards 1000] [--python-shards 1000] [--files 1000]
       [--file-shards 100] [--parallel 4] [--rounds 3] [--dir DIR]
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


# A trivial Python evaluation, through Mayuri and raw: the sum of this shard's part of 10,000 numbers.
EVALUATION = """import mayuri
part = mayuri.shard_of(range(10_000))
mayuri.output("total", sum(part))
"""
RAW_EVALUATION = """import json, sys
index, count, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
part = range(10_000 * index // count, 10_000 * (index + 1) // count)
with open(folder + "/outputs.json", "w") as out:
    json.dump({"total": sum(part)}, out)
"""


def scheduled_shards(shards: int, parallel: int, root: Path, python: bool = False) -> float:
    """Seconds of `mayuri run` for `shards` shards of `true` (or of `EVALUATION`, reduced by a sum)."""
    if python:
        root.mkdir(parents=True, exist_ok=True)
        (root / "evaluate.py").write_text(EVALUATION)
        job = f"    run: \"{sys.executable} evaluate.py\"\n    outputs: [total]\n    reduce: {{total: sum}}\n"
    else:
        job = "    run: \"true\"\n"
    _project(root, parallel, f"name: bench\njobs:\n  ev:\n{job}    shards: {shards}\n")
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


def raw_python(shards: int, parallel: int, root: Path) -> float:
    """Seconds to run `RAW_EVALUATION` for each shard, raw, with its run-folder files."""
    script = root / "evaluate.py"
    script.write_text(RAW_EVALUATION)
    return raw_with_files(shards, parallel, root, lambda number, folder: [
        sys.executable, str(script), str(number), str(shards), str(folder)])


def _ratio_line(label: str, raw: tuple[float, float], ours: tuple[float, float]) -> str:
    ratio = ours[0] / raw[0]
    return (f"{label}: raw with files {raw[0]:.2f} s (cpu {raw[1]:.2f} s), mayuri run {ours[0]:.2f} s "
            f"(cpu {ours[1]:.2f} s): {ratio:.2f}x (target <= 1.5x) {'OK' if ratio <= 1.5 else 'OVER TARGET'}"
            f"; cpu ratio {ours[1] / raw[1]:.2f}x")


def _medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    wall, cpu = (statistics.median(v) for v in zip(*pairs, strict=True))
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--python-shards", type=int, default=1000, help="shards of the Python evaluation (0: skip)")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--file-shards", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary projects go (default: $TMPDIR)")
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sides: dict[str, list[tuple[float, float]]] = {"raw": [], "mayuri": [], "raw python": [], "mayuri python": []}
    here = os.getcwd()
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            root = Path(tmp)
            os.chdir(root)
            for folder in ("raw", "raw-python"):
                (root / folder).mkdir()
            sides["raw"].append(measured(lambda root=root: raw_with_files(args.shards, args.parallel, root / "raw")))
            sides["mayuri"].append(measured(lambda root=root: scheduled_shards(args.shards, args.parallel,
                                                                                root / "p")))
            if args.python_shards:
                sides["raw python"].append(measured(lambda root=root: raw_python(
                    args.python_shards, args.parallel, root / "raw-python")))
                sides["mayuri python"].append(measured(lambda root=root: scheduled_shards(
                    args.python_shards, args.parallel, root / "p-python", python=True)))
            os.chdir(here)
        print(f"round {number + 1}: " + ", ".join(f"{side} {values[-1][0]:.2f} s" for side, values in sides.items()
                                                  if values), file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        ones = []
        for number in range(5):
            folder = Path(tmp) / f"one-{number}"
            folder.mkdir()
            ones.append(raw_with_files(1, 1, folder))
        one = statistics.median(ones)
        first, cached, edit = file_rerun(args.files, args.file_shards, args.parallel, Path(tmp) / "files",
                                         args.rounds)
    limit = 2 * cached + one
    print(f"shards {args.parallel} at a time, median of {args.rounds} rounds; {machine_line()}")
    print(_ratio_line(f"{args.shards} shards of `true`", _medians(sides["raw"]), _medians(sides["mayuri"])))
    if args.python_shards:
        print(_ratio_line(f"{args.python_shards} shards of a trivial Python evaluation",
                          _medians(sides["raw python"]), _medians(sides["mayuri python"])))
    print(f"{args.files} files over {args.file_shards} shards: first run {first:.2f} s, all cached {cached:.3f} s, "
          f"one process {one * 1e3:.1f} ms")
    print(f"rerun after one edit:  {edit:7.3f} s  (one shard launched; limit 2 x cached + one process = "
          f"{limit:.3f} s) ratio {edit / limit:.2f} {'OK' if edit <= limit else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
