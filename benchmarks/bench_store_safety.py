"""What store safety costs: run.json manifests when runs end, `doctor --rebuild`, counting a huge plan.

Builds a store of N finished runs through the real `mayuri run` (a sweep of
`true`), then, interleaved in the same rounds:

| figure | raw limit it is compared with |
| --- | --- |
| `write_manifests` of all N runs (the per-run cost added when runs end) | json.dump + rename of the same manifests, already in memory |
| `rebuild_store` of the whole store (new database from the run folders) | reading and json-parsing every run.json |
| refusing a 100 x 100 x 100 plan (`mayuri run --dry-run`, exit 2) | bare interpreter start |

    .venv/bin/python benchmarks/bench_store_safety.py [--runs 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mayuri.store.db import open_store
from mayuri.store.rebuild import rebuild_store
from mayuri.store.run_manifest import MANIFEST_FILE, manifest_of, write_manifests


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _raw_manifests(store_root: Path, manifests: dict[str, dict]) -> None:
    for run_id, manifest in manifests.items():
        path = store_root / "runs" / run_id / "raw.json"
        with open(str(path) + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, sort_keys=True, default=str)
        os.replace(str(path) + ".tmp", path)


def _raw_read(store_root: Path) -> int:
    count = 0
    for folder in (store_root / "runs").iterdir():
        with open(folder / MANIFEST_FILE, encoding="utf-8") as handle:
            json.load(handle)
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    mayuri = [sys.executable, "-m", "mayuri"]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        subprocess.run([*mayuri, "init"], cwd=root, check=True, capture_output=True)
        (root / "exp.yaml").write_text(
            f"name: many\nparams: {{i: 0}}\njobs:\n  j:\n    run: [\"true\", \"${{i}}\"]\n"
            f"    sweep: {{i: {{range: [{args.runs}]}}}}\n")
        subprocess.run([*mayuri, "run", "exp.yaml"], cwd=root, check=True, capture_output=True)
        values = list(range(100))
        (root / "huge.yaml").write_text(
            f"name: huge\nparams: {{a: 0, b: 0, c: 0}}\njobs:\n  t:\n    run: [\"true\"]\n"
            f"    sweep: {{a: {values}, b: {values}, c: {values}}}\n")
        store_root = root / ".mayuri"
        store = open_store(store_root)
        ids = [r[0] for r in store.db.execute_sql("SELECT id FROM run").fetchall()]
        manifests = {i: manifest_of(store, i) for i in ids}
        timings: dict[str, list[float]] = {k: [] for k in
                                           ("manifests", "raw write", "rebuild", "raw read", "huge", "bare")}
        for _ in range(args.repeat):
            began = time.perf_counter()
            write_manifests(store, ids)
            timings["manifests"].append(time.perf_counter() - began)
            began = time.perf_counter()
            _raw_manifests(store_root, manifests)
            timings["raw write"].append(time.perf_counter() - began)
        store.close()
        for _ in range(args.repeat):
            began = time.perf_counter()
            rebuild_store(store_root, allow_network_fs=False, busy_timeout=30, yes=True)
            timings["rebuild"].append(time.perf_counter() - began)
            began = time.perf_counter()
            assert _raw_read(store_root) == len(ids)
            timings["raw read"].append(time.perf_counter() - began)
            for aside in store_root.glob("mayuri.db.before-rebuild-*"):
                aside.unlink()
            began = time.perf_counter()
            done = subprocess.run([*mayuri, "run", "huge.yaml", "--dry-run"], cwd=root, capture_output=True)
            timings["huge"].append(time.perf_counter() - began)
            assert done.returncode == 2, done.stderr
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            timings["bare"].append(time.perf_counter() - began)
        shutil.rmtree(root / ".mayuri" / "parsed", ignore_errors=True)
    m = {k: _median(v) for k, v in timings.items()}
    n = len(ids)
    print(f"runs: {n}, repeat: {args.repeat}, load average {os.getloadavg()[0]:.2f}")
    print(f"manifests written       {m['manifests'] / n * 1e3:7.3f} ms/run   raw json write "
          f"{m['raw write'] / n * 1e3:7.3f} ms/run   ratio {m['manifests'] / m['raw write']:5.2f}")
    print(f"doctor --rebuild        {m['rebuild'] / n * 1e3:7.3f} ms/run   raw json read  "
          f"{m['raw read'] / n * 1e3:7.3f} ms/run   ratio {m['rebuild'] / m['raw read']:5.2f}")
    print(f"1,000,000-instance plan refused in {m['huge'] * 1e3:7.1f} ms   bare interpreter "
          f"{m['bare'] * 1e3:7.1f} ms   ratio {m['huge'] / m['bare']:5.2f}")


if __name__ == "__main__":
    main()
