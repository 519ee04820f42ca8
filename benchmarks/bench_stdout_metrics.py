"""Benchmark of `metrics_from: {stdout: ...}`: a printing program under the wrapper, against the same program alone.

    .venv/bin/python benchmarks/bench_stdout_metrics.py [--lines 200000] [--repeat 3]

The raw limit is measured in the same run, interleaved: the program writing
its lines straight into a file (what a job without `metrics_from` does).
Then the same program under `mayuri.tracking.stdout_metrics` (as the
scheduler starts it) with nanoGPT's two patterns, every line matching one of
them; timed from the start until the wrapper has exited, which is after every
point is committed to the store (the count is checked). Printed: both
medians, their ratio, and the per-line cost of the wrapper.

The issue sets no target. For scale: nanoGPT prints a line every few hundred
milliseconds, so even 20 us per line is far below a millionth of its time.
The figure includes the wrapper's reads, the matching, `mayuri.log` and the
sink's commits, all competing with the program for the same cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mayuri.store import open_store
from mayuri.store.records import create_run, ensure_experiment, new_run_id
from mayuri.tracking.stdout_metrics import wrap

PRINTER = "import sys\nfor i in range(int(sys.argv[1])):\n    print(f'iter {i}: loss {1.0 / (i + 1):.4f}, time 3.1ms')\n"
PATTERNS = [r"iter (?P<step>\d+): loss (?P<loss>[\d.]+)", r"time (?P<ms>[\d.]+)ms"]


def timed(argv: list[str], out: Path, env: dict[str, str]) -> float:
    with open(out, "wb") as handle:
        start = time.perf_counter()
        subprocess.run(argv, stdout=handle, env=env, check=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raw: list[float] = []
    wrapped: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "printer.py").write_text(PRINTER)
        command = [sys.executable, str(folder / "printer.py"), str(args.lines)]
        store = open_store(folder / "store")
        for _ in range(args.repeat):
            raw.append(timed(command, folder / "raw.log", dict(os.environ)))
            run_id = new_run_id()
            run_dir = store.runs / run_id
            run_dir.mkdir(parents=True)
            create_run(store, run_id=run_id, experiment_id=ensure_experiment(store, "bench"), job="print",
                       kind="job", config_hash="bench", params={}, config={}, upstream={}, reason="bench",
                       run_dir=run_dir)
            env = dict(os.environ, MAYURI_RUN_ID=run_id, MAYURI_RUN_DIR=str(run_dir), MAYURI_STORE=str(store.root))
            wrapped.append(timed(wrap(command, PATTERNS, str(run_dir / "closure")), run_dir / "stdout.log", env))
            count = store.db.execute_sql("SELECT count(*) FROM metric WHERE run_id = ?", (run_id,)).fetchone()[0]
            assert count == 2 * args.lines, f"{count} points, expected {2 * args.lines}"
            assert (run_dir / "stdout.log").read_bytes() == (folder / "raw.log").read_bytes()
        store.close()
    load = os.getloadavg()[0]
    raw_median, wrapped_median = statistics.median(raw), statistics.median(wrapped)
    print(f"lines printed: {args.lines:,} (2 metrics each); load average {load:.2f}")
    print(f"program alone, stdout to a file   median {raw_median * 1e3:9.1f} ms  (best {min(raw) * 1e3:.1f})")
    print(f"under metrics_from, all committed median {wrapped_median * 1e3:9.1f} ms  (best {min(wrapped) * 1e3:.1f})")
    per_line = (wrapped_median - raw_median) / args.lines * 1e6
    print(f"ratio {wrapped_median / raw_median:.2f}x; wrapper cost {per_line:.2f} us per line")


if __name__ == "__main__":
    main()
