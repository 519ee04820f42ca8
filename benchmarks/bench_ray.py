"""The Ray executor's overhead and delays, on a real Ray cluster started here (a head and a worker node).

1. Overhead per job: N trivial jobs (`true`) through `mayuri run --executor ray`
   against the same N commands submitted as bare Ray tasks that run
   `subprocess.run`, with the same CPU request, on the same cluster, in the
   same run (interleaved rounds; medians). Target: at most 1.5x.
2. Log delay: a job prints a timestamp every 50 ms; this process tails the
   head's `stdout.log` and notes when each line appears (print to appearance).
3. Metric delay: the job logs `t=time.time()` every 50 ms; this process polls
   the store and notes when each point first becomes queryable.
   Targets: medians under 2 s.
Both sides share the machine's clock (the nodes are local processes).
Usage: python benchmarks/bench_ray.py [--jobs 200] [--rounds 2] [--parallel 16]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from timing import machine_line  # noqa: E402

from tests.ray.cluster import start_cluster  # noqa: E402

STREAM_JOB = """
import time, mayuri
for step in range(60):
    now = time.time()
    print(f"t {now!r}", flush=True)
    mayuri.log(step=step, t=now)
    time.sleep(0.05)
"""


def _project(root: Path, address: str, parallel: int) -> Path:
    root.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "mayuri", "init"], cwd=root, check=True, capture_output=True)
    config = root / "mayuri.toml"
    text = re.sub(r"(?m)^max_parallel = .*$", f"max_parallel = {parallel}", config.read_text())
    config.write_text(text + f'\n[executor.ray]\naddress = "{address}"\n')
    return root


def mayuri_jobs(root: Path, jobs: int, round_: int) -> float:
    (root / "exp.yaml").write_text(
        f"jobs:\n  trivial:\n    run: \"true\"\n    params: {{i: 0, round: {round_}}}\n"
        f"    sweep: {{i: {{range: [0, {jobs}]}}}}\n")
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mayuri", "run", "exp.yaml", "--executor", "ray"], cwd=root,
                          capture_output=True, text=True, check=False)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"mayuri run failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return took


BARE = """
import sys, time, subprocess, logging, ray
ray.init(address=sys.argv[1], logging_level=logging.WARNING, log_to_driver=False)
@ray.remote(num_cpus=1, max_retries=0)
def run(command):
    return subprocess.run(command, check=False).returncode
began = time.perf_counter()
codes = ray.get([run.remote(["true"]) for _ in range(int(sys.argv[2]))])
assert codes == [0] * len(codes)
print(time.perf_counter() - began)
"""


def bare_jobs(address: str, jobs: int) -> float:
    """N bare Ray tasks running the command, from a fresh driver like `mayuri run` is (connection counted)."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", BARE, address, str(jobs)], check=True, capture_output=True)
    return time.perf_counter() - began


def delays(root: Path) -> tuple[list[float], list[float]]:
    """(log delays, metric delays) of one streaming job, in seconds."""
    (root / "stream.py").write_text(STREAM_JOB)
    (root / "stream.yaml").write_text(f"jobs:\n  stream:\n    run: python stream.py\n    params: {{at: {time.time()!r}}}\n")
    runs = root / ".mayuri" / "runs"
    before = set(runs.iterdir())
    running = subprocess.Popen([sys.executable, "-m", "mayuri", "run", "stream.yaml", "--executor", "ray"],
                               cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen_lines: dict[float, float] = {}
    seen_points: dict[float, float] = {}
    log_file: Path | None = None
    db = sqlite3.connect(root / ".mayuri" / "mayuri.db", timeout=30)
    try:
        while running.poll() is None or log_file is None:
            now = time.time()
            if log_file is None:
                new = [p / "stdout.log" for p in set(runs.iterdir()) - before if (p / "stdout.log").exists()]
                log_file = new[0] if new else None
            if log_file is not None:
                for line in log_file.read_text().splitlines():
                    if line.startswith("t "):
                        seen_lines.setdefault(float(line[2:]), now)
            for (value,) in db.execute("SELECT value FROM metric JOIN metric_key ON metric_key.id = metric.key_id "
                                       "WHERE metric_key.name = 't'"):
                seen_points.setdefault(value, now)
            if running.poll() is not None and log_file is None:
                break
            time.sleep(0.02)
    finally:
        db.close()
        if running.poll() is None:
            running.kill()
        running.wait()
    return [seen - printed for printed, seen in seen_lines.items()], [seen - at for at, seen in seen_points.items()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(machine_line())
    cluster = start_cluster(worker_gpus=0, worker_cpus=2)
    env_before = os.environ.pop("RAY_ADDRESS", None)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
            bare, scheduled = [], []
            for round_ in range(args.rounds):
                # A new project each round: every round is the first run of its sweep, as the bare side is.
                root = _project(Path(tmp) / f"proj{round_}", cluster.address, args.parallel)
                bare.append(bare_jobs(cluster.address, args.jobs))
                scheduled.append(mayuri_jobs(root, args.jobs, round_))
                print(f"round {round_ + 1}: bare Ray tasks {bare[-1]:.2f}s, mayuri --executor ray {scheduled[-1]:.2f}s")
            b, s = statistics.median(bare), statistics.median(scheduled)
            print(f"{args.jobs} trivial jobs on 3 cluster CPUs: bare Ray {b:.2f}s ({b / args.jobs * 1000:.1f} ms/job), "
                  f"mayuri {s:.2f}s ({s / args.jobs * 1000:.1f} ms/job): {s / b:.2f}x (target <= 1.5x)")
            logs, metrics = delays(root)
            print(f"log delay: median {statistics.median(logs):.3f}s, max {max(logs):.3f}s over {len(logs)} lines "
                  "(target: median < 2 s)")
            print(f"metric delay: median {statistics.median(metrics):.3f}s, max {max(metrics):.3f}s over "
                  f"{len(metrics)} points (target: median < 2 s)")
    finally:
        cluster.stop()
        if env_before is not None:
            os.environ["RAY_ADDRESS"] = env_before


if __name__ == "__main__":
    main()
