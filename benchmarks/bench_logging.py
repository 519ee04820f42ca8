"""Benchmark of `mayuri.log`: the job's hot path and end-to-end ingestion, against raw SQLite.

    .venv/bin/python benchmarks/bench_logging.py [--points 1000000]

The raw limit is measured in the same run: sqlite3 `executemany` of the same
rows (run_id, key_id, step, value, logged_at) into the same `metric` table
and index, one transaction, nothing else. Then a real job process (MAYURI_*
variables set, as under `mayuri run`) logs the points, and we time:

- hot path: the job's own loop of `mayuri.log(step=i, loss=x)`, per point;
- end to end: from the first `log` call until every point is committed and
  countable in the store (the job's exit waits for its writer to commit).

Targets (issue 5): hot path <= 2 us per point; end-to-end rate >= 0.5x raw.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mayuri.store import open_store
from mayuri.store.records import create_run, ensure_experiment, new_run_id

JOB = r"""
import json, sys, time
import mayuri
n, keys = int(sys.argv[1]), int(sys.argv[2])
names = [f"k{i}" for i in range(keys)]
log = mayuri.log
started = time.time()
t0 = time.perf_counter()
if keys == 1:
    for i in range(n):
        log(step=i, loss=i * 0.5)
else:
    values = {name: 0.5 for name in names}
    for i in range(n // keys):
        log(values, step=i)
hot = time.perf_counter() - t0
t0 = time.perf_counter()
for i in range(n // keys):
    pass
loop = time.perf_counter() - t0
print(json.dumps({"started": started, "hot": hot, "loop": loop}), flush=True)
"""


def raw_limit(folder: Path, points: int) -> float:
    """Points per second of plain executemany into a copy of the metric table (with its index)."""
    db = folder / "raw.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=wal")
    con.execute("PRAGMA synchronous=normal")
    con.execute("CREATE TABLE metric (run_id TEXT NOT NULL, key_id INTEGER NOT NULL, step INTEGER NOT NULL, "
                "value REAL, logged_at REAL NOT NULL)")
    con.execute("CREATE INDEX metric_run_key_step ON metric (run_id, key_id, step)")
    run_id, now = new_run_id(), time.time()
    rows = [(run_id, 1, i, i * 0.5, now) for i in range(points)]
    t0 = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    con.executemany("INSERT INTO metric VALUES (?, ?, ?, ?, ?)", rows)
    con.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    con.close()
    return points / elapsed


def job_run(folder: Path, points: int, keys: int) -> dict[str, float]:
    """Run a job that logs `points` points over `keys` keys; time its hot path and ingestion."""
    store = open_store(folder / f"store-{keys}")
    run_id = new_run_id()
    run_dir = store.runs / run_id
    run_dir.mkdir(parents=True)
    create_run(store, run_id=run_id, experiment_id=ensure_experiment(store, "bench"), job="log", kind="job",
               config_hash="bench", params={}, config={}, upstream={}, reason="bench", run_dir=run_dir)
    env = dict(os.environ, MAYURI_RUN_ID=run_id, MAYURI_RUN_DIR=str(run_dir), MAYURI_STORE=str(store.root))
    done = subprocess.run([sys.executable, "-c", JOB, str(points), str(keys)], env=env, capture_output=True,
                          text=True, check=True)
    figures = json.loads(done.stdout)
    # The job has exited, so its writer has committed; count to prove it.
    count = 0
    deadline = time.monotonic() + 120
    while count < points and time.monotonic() < deadline:
        count = store.db.execute_sql("SELECT count(*) FROM metric WHERE run_id = ?", (run_id,)).fetchone()[0]
        if count < points:
            time.sleep(0.01)
    queryable = time.time()
    store.close()
    assert count == points, f"only {count} of {points} points arrived"
    return {"hot_us": figures["hot"] / points * 1e6, "loop_us": figures["loop"] / points * 1e6,
            "ingest_rate": points / (queryable - figures["started"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of each measurement")
    args = parser.parse_args()
    n = args.points
    raws: list[float] = []
    results: dict[int, list[dict[str, float]]] = {1: [], 4: []}
    with tempfile.TemporaryDirectory(prefix="mayuri-bench-") as tmp:
        for attempt in range(args.repeat):
            folder = Path(tmp) / str(attempt)
            folder.mkdir()
            # Raw limit and job runs interleaved, so that a busy spell of the machine hits both.
            raws.append(raw_limit(folder, n))
            for keys, runs in results.items():
                runs.append(job_run(folder, n, keys))
    raw = max(raws)
    raw_us = 1e6 / raw
    print(f"raw limit: sqlite3 executemany of {n:,} rows into the metric table and index: "
          f"{raw:,.0f} points/s ({raw_us:.2f} us/point); best of {args.repeat}, worst {min(raws):,.0f}")
    for keys, runs in results.items():
        hot = min(r["hot_us"] for r in runs)
        loop = min(r["loop_us"] for r in runs)
        rate = max(r["ingest_rate"] for r in runs)
        label = "mayuri.log(step=i, loss=x)" if keys == 1 else f"mayuri.log({{{keys} keys}}, step=i)"
        print(f"{label}, {n:,} points:")
        print(f"  hot path: {hot:.2f} us/point (target <= 2.00 us; the bare loop costs {loop:.2f}); "
              f"{hot / raw_us:.2f}x the raw per-row time")
        print(f"  end to end until queryable: {rate:,.0f} points/s = {rate / raw:.2f}x raw (target >= 0.50x)")


if __name__ == "__main__":
    main()
