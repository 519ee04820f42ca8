"""Build a big, realistic Mayuri store for the dashboard benchmark (and small ones for its tests).

    python benchmarks/make_big_store.py /tmp/big --runs 100000 --points 10000000

makes a project at /tmp/big (mayuri.toml + .mayuri/) whose store was created
and migrated by Mayuri itself, then filled with raw `executemany` inside one
BEGIN IMMEDIATE transaction per table: experiments, runs with params and
attempts (some out of memory), lineage from data runs to trainings, and
metric points with their summaries. One run (the newest `train` run of
exp-00) holds a 100,000-point `loss` series for the chart benchmark (half the
points, on a small store); the other points are spread evenly. Everything comes from a seeded generator, so a given
size always gives the same store (the snapshot tests rely on it).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from mayuri.config import load_settings
from mayuri.init_project import init_project
from mayuri.store import Store, open_store

BASE_TIME = 1_767_225_600.0  # 2026-01-01 00:00 UTC: fixed so that snapshots do not move
USERS = ("ana", "ben", "chen", "dara")
STATUSES = (("succeeded", 80), ("failed", 10), ("cancelled", 4), ("queued", 3), ("running", 3))
LONG_SERIES = 100_000


def _status(rng: random.Random) -> str:
    pick = rng.uniform(0, 100)
    for status, weight in STATUSES:
        if pick < weight:
            return status
        pick -= weight
    return "succeeded"


def _runs(rng: random.Random, count: int, root: Path) -> list[tuple[Any, ...]]:
    experiments = max(1, min(20, count // 5))
    rows = []
    for n in range(count):
        exp = n % experiments + 1
        job = ("prep", "train", "train", "train", "eval")[n // experiments % 5]
        rid = f"{rng.getrandbits(128):032x}"
        created = BASE_TIME + n * 30.0
        status = _status(rng) if job != "prep" else "succeeded"
        started = None if status == "queued" else created + 1.0
        ended = None if status in ("queued", "running") else created + 1.0 + rng.uniform(5, 7200)
        params = {"seed": n % 7}
        if job == "train":
            params.update(lr=rng.choice((1e-4, 3e-4, 1e-3, 3e-3)), batch_size=rng.choice((16, 32, 64, 128)))
        fingerprint = f"{rng.getrandbits(256):064x}" if status == "succeeded" else None
        rows.append((rid, exp, job, status, fingerprint, f"{rng.getrandbits(64):016x}",
                     json.dumps(params, sort_keys=True, separators=(",", ":")), created, started, ended,
                     USERS[n % len(USERS)], "gpu-box", str(root / "runs" / rid),
                     rng.randrange(0, 5) if status == "succeeded" else 0,
                     ended))
    return rows


def _attempts(rng: random.Random, runs: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    rows = []
    for rid, _, job, status, *_rest in runs:
        if status == "queued":
            continue
        params, started, ended = _rest[2], _rest[4], _rest[5]
        gpus = json.dumps([f"GPU-fake-{rng.randrange(4):04d}"]) if job == "train" else "[]"
        if job == "train" and rng.random() < 0.05:
            rows.append((rid, 1, "failed", started, started + 30, 1, None, "oom", gpus, params))
            rows.append((rid, 2, status, started + 31, ended, 0 if status == "succeeded" else 1, None, None,
                         gpus, params))
        else:
            code = None if status == "running" else (0 if status == "succeeded" else 1)
            rows.append((rid, 1, status, started, ended, code, None, None, gpus, params))
    return rows


def _series(rng: random.Random, points: int) -> list[tuple[int, float]]:
    base = rng.uniform(1.5, 3.0)
    rate = rng.uniform(2.0, 6.0) / max(points, 1)
    return [(step, base * math.exp(-rate * step) + rng.uniform(0, 0.05)) for step in range(points)]


def _summary(rid: str, key_id: int, series: list[tuple[int, float]]) -> tuple[Any, ...]:
    low = min(series, key=lambda p: p[1])
    high = max(series, key=lambda p: p[1])
    return (rid, key_id, series[-1][1], series[-1][0], low[1], low[0], high[1], high[0], len(series),
            BASE_TIME)


def _insert_metrics(store: Store, rng: random.Random, runs: list[tuple[Any, ...]], total_points: int) -> int:
    trains = [r for r in runs if r[2] == "train" and r[3] != "queued"]
    if not trains:
        return 0
    cursor = store.db.cursor()
    with store.write():
        cursor.executemany("INSERT INTO metric_key (id, name) VALUES (?, ?)",
                           [(1, "loss"), (2, "accuracy"), (3, "sys/rss")])
    long_run = max((r for r in trains if r[1] == 1), key=lambda r: r[7], default=trains[-1])
    long_points = min(LONG_SERIES, total_points // 2)
    rest = total_points - long_points
    # Rounded up, so that the store holds at least `total_points`.
    per_run = max(2, -(-rest // (2 * max(1, len(trains) - 1))))
    written = 0
    batch: list[tuple[Any, ...]] = []
    summaries: list[tuple[Any, ...]] = []
    # Runs in id order: the (run_id, key_id, step) index then grows at its end.
    for run in sorted(trains, key=lambda r: r[0]):
        rid = run[0]
        counts = ((1, long_points),) if run is long_run else ((1, per_run), (2, per_run))
        for key_id, points in counts:
            series = _series(rng, points)
            if key_id == 2:
                series = [(s, 1.0 - v / 3.0) for s, v in series]
            logged = run[7] + 2.0
            batch.extend((rid, key_id, step, value, logged + step * 0.01) for step, value in series)
            summaries.append(_summary(rid, key_id, series))
        if len(batch) >= 500_000:
            written += _flush(store, batch)
    written += _flush(store, batch)
    with store.write():
        cursor.executemany("INSERT INTO metric_summary (run_id, key_id, last, last_step, min, min_step, max, "
                           "max_step, count, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", summaries)
    return written


def _flush(store: Store, batch: list[tuple[Any, ...]]) -> int:
    count = len(batch)
    with store.write():
        store.db.cursor().executemany(
            "INSERT INTO metric (run_id, key_id, step, value, logged_at) VALUES (?, ?, ?, ?, ?)", batch)
    batch.clear()
    return count


def build_store(root: Path, runs: int, points: int, seed: int = 0) -> dict[str, Any]:
    """Make the project at `root` and fill its store; returns what was written."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    init_project(root)
    settings = load_settings(root)
    store = open_store(settings.store.path)
    try:
        run_rows = _runs(rng, runs, settings.store.path)
        experiments = sorted({r[1] for r in run_rows})
        cursor = store.db.cursor()
        with store.write():
            cursor.executemany("INSERT INTO experiment (id, name, created_at) VALUES (?, ?, ?)",
                               [(e, f"exp-{e - 1:02d}", BASE_TIME) for e in experiments])
            cursor.executemany(
                "INSERT INTO run (id, experiment_id, job, status, fingerprint, config_hash, params, created_at, "
                "started_at, ended_at, user, host, run_dir, hits, last_used_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
            cursor.executemany(
                "INSERT INTO attempt (run_id, number, status, started_at, ended_at, exit_code, signal, cause, "
                "gpus, params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _attempts(rng, run_rows))
            latest_prep: dict[int, str] = {}
            lineage = []
            for r in run_rows:
                if r[2] == "prep":
                    latest_prep[r[1]] = r[0]
                elif r[1] in latest_prep:
                    lineage.append((latest_prep[r[1]], r[0], "data"))
            cursor.executemany("INSERT INTO lineage (parent_id, child_id, name) VALUES (?, ?, ?)", lineage)
        written = _insert_metrics(store, rng, run_rows, points)
    finally:
        store.close()
    return {"runs": len(run_rows), "points": written, "lineage": len(lineage)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder of the project to create (must not hold a store)")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if (args.root / ".mayuri" / "mayuri.db").exists():
        parser.error(f"{args.root} already has a store; give an empty folder")
    began = time.perf_counter()
    made = build_store(args.root, args.runs, args.points, args.seed)
    took = time.perf_counter() - began
    print(f"{made['runs']:,} runs, {made['points']:,} metric points, {made['lineage']:,} lineage edges "
          f"in {took:.1f} s ({made['points'] / took:,.0f} points/s overall)")


if __name__ == "__main__":
    main()
