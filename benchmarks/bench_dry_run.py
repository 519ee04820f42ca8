"""`mayuri run --dry-run` of an experiment that expands to 1,000 jobs (target: under 1 s).

Prints the median wall time of the command next to the bare interpreter start
measured in the same run, on an empty store and on a store where every job is
cached (the cache check then runs for all 1,000 instances).

    .venv/bin/python benchmarks/bench_dry_run.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPERIMENT = """
name: thousand
params: {a: 0, b: 0, c: 0}
jobs:
  grid:
    run: ["true", "${a}", "${b}", "${c}"]
    sweep: {a: {range: [10]}, b: {range: [10]}, "c": {range: [10]}}
"""


def timed(argv: list[str], cwd: Path, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    mayuri = [sys.executable, "-m", "mayuri"]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        subprocess.run([*mayuri, "init"], cwd=root, check=True, capture_output=True)
        (root / "exp.yaml").write_text(EXPERIMENT)
        bare = timed([sys.executable, "-c", "pass"], root)
        cold = timed([*mayuri, "run", "exp.yaml", "--dry-run"], root)
        subprocess.run([*mayuri, "run", "exp.yaml"], cwd=root, check=True, capture_output=True)
        warm = timed([*mayuri, "run", "exp.yaml", "--dry-run"], root)
        out = subprocess.run([*mayuri, "run", "exp.yaml", "--dry-run"], cwd=root, capture_output=True, text=True)
        assert "1000 jobs: 1000 cached" in out.stdout, out.stdout[-300:]
    print(f"bare interpreter start          {bare * 1000:8.1f} ms")
    print(f"dry-run, 1000 jobs, empty store {cold * 1000:8.1f} ms  ({cold / bare:5.1f}x bare start; target < 1000 ms)")
    print(f"dry-run, 1000 jobs, all cached  {warm * 1000:8.1f} ms  ({warm / bare:5.1f}x bare start; target < 1000 ms)")


if __name__ == "__main__":
    main()
