"""Benchmark: the cost of the C file-access tracer on a job (issue 14).

Each job runs as a fresh Python process, in the environment Mayuri gives a job
(the tracer preloaded and the audit hook installed: "traced"), with the tracer
alone ("C tracer alone"), and raw, interleaved in shuffled rounds:

- opens: read 10,000 small files inside a project folder (each opened, read
  and closed once). Target: traced at most 1.3x raw.
- loop: a tight arithmetic loop that opens nothing, timed by itself (the
  interpreter's start apart). Target: < 2% apart.

Figures are CPU time (user + system: other load on a shared machine disturbs
it less than wall time), the best of --repeat rounds; the ratio is to raw.

Usage: python benchmarks/bench_tracer.py [--files 10000] [--repeat 11]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from timing import interleave, machine_line, time_command, verdict

from mayuri.closure import closure_env
from mayuri.closure.launch import tracer_library, with_tracer

OPENS = """
import os
for name in sorted(os.listdir("data")):
    with open("data/" + name, "rb") as f:
        f.read()
"""
# Timed inside the process: the loop itself, not the interpreter's start.
LOOP = """
import time
start = time.process_time()
total = 0
for i in range(6_000_000):
    total += i * i
print(time.process_time() - start)
"""
LIMITS = {"opens": 1.3, "loop": 1.02}


def measure(code: str, root: Path, env: dict[str, str]) -> Callable[[], tuple[float, float]]:
    """One run of `code`: (its own figure when it prints one, else its CPU time; CPU time)."""
    def once() -> tuple[float, float]:
        _, cpu, done = time_command([sys.executable, "-c", code], root, env)
        printed = done.stdout.strip()
        return (float(printed) if printed else cpu), cpu
    return once


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    library = tracer_library()
    if library is None:
        sys.exit("the C tracer is not built here (pip install -e . with a C compiler)")
    print(machine_line())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "proj"
        (root / "data").mkdir(parents=True)
        for i in range(args.files):
            (root / "data" / f"{i:05}.txt").write_text(f"row {i}\n")
        raw = dict(os.environ)
        traced = closure_env(raw, root / ".mayuri" / "closure", root, [root / ".mayuri"])
        with_tracer(traced, library)
        alone = {k: v for k, v in traced.items() if k != "PYTHONPATH"}
        if "PYTHONPATH" in raw:
            alone["PYTHONPATH"] = raw["PYTHONPATH"]
        for name, code in (("opens", OPENS), ("loop", LOOP)):
            samples = interleave({
                "raw": measure(code, root, raw),
                "traced": measure(code, root, traced),
                "C tracer alone": measure(code, root, alone),
            }, args.repeat, shuffle=True)
            base = samples["raw"].best
            for label in ("raw", "traced", "C tracer alone"):
                print(f"{name:5} {label:<15} best {samples[label].best * 1e3:8.1f} ms cpu"
                      f"   ratio {samples[label].best / base:5.3f}")
            ratio = samples["traced"].best / base
            print(f"{name:5} traced at most {LIMITS[name]}x raw -> {verdict(ratio <= LIMITS[name])}")


if __name__ == "__main__":
    main()
