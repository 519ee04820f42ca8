"""Benchmark: the cost of the C file-access tracer on a job (issue 14).

Two jobs, each run as a fresh Python process with the environment Mayuri
gives a job (tracer preloaded and audit hook installed) and raw (neither),
interleaved, in the same run:

- opens: read 10,000 small files inside a project folder (each opened,
  read and closed once). Target: traced at most 1.3x raw.
- loop: a tight arithmetic loop that opens nothing. Target: < 2% apart.

Medians of --repeat rounds; the ratio is traced / raw.

Usage: python benchmarks/bench_tracer.py [--files 10000] [--repeat 5]
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

from mayuri.closure import closure_env
from mayuri.closure.launch import tracer_library, with_tracer

OPENS = """
import os
for name in sorted(os.listdir("data")):
    with open("data/" + name, "rb") as f:
        f.read()
"""
LOOP = """
total = 0
for i in range(6_000_000):
    total += i * i
"""


def timed(code: str, cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    library = tracer_library()
    if library is None:
        sys.exit("the C tracer is not built here (pip install -e . with a C compiler)")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "proj"
        (root / "data").mkdir(parents=True)
        for i in range(args.files):
            (root / "data" / f"{i:05}.txt").write_text(f"row {i}\n")
        raw = dict(os.environ)
        results: dict[str, tuple[list[float], list[float]]] = {"opens": ([], []), "loop": ([], [])}
        alone: list[float] = []
        for round_ in range(args.repeat):
            for name, code in (("opens", OPENS), ("loop", LOOP)):
                traced = closure_env(raw, root / ".mayuri" / f"closure-{round_}-{name}", root, [root / ".mayuri"])
                with_tracer(traced, library)
                results[name][1].append(timed(code, root, raw))
                results[name][0].append(timed(code, root, traced))
                if name == "opens":
                    # The C tracer alone, without the Python audit hook.
                    preload_only = dict(raw, **{k: v for k, v in traced.items() if k != "PYTHONPATH"})
                    preload_only.pop("PYTHONPATH", None)
                    alone.append(timed(code, root, preload_only))
        for name, (traced_times, raw_times) in results.items():
            t, r = statistics.median(traced_times), statistics.median(raw_times)
            limit = "1.3x" if name == "opens" else "1.02x"
            print(f"{name:6} traced {t * 1000:8.1f} ms  raw {r * 1000:8.1f} ms  ratio {t / r:5.3f} (target <= {limit})")
            if name == "opens":
                a = statistics.median(alone)
                print(f"{'':6} C tracer alone {a * 1000:8.1f} ms  ratio {a / r:5.3f}")


if __name__ == "__main__":
    main()
