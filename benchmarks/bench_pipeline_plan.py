"""`examples/pipeline` with `lr=0.1,0.5` on a fresh store: the plan and the launches against a reference count.

The reference is worked out by hand from the experiment file (DESIGN.md,
"Experiment file" and "Caching"): `lr=0.1,0.5` is a multirun of a top-level
param, so two independent copies of the pipeline, each with one data step,
three fits (the ridge sweep) and one report: 10 instances. The data step's
command never uses `lr`, so its two copies are the same work: the second
waits for the first and reuses it, and 9 processes are launched. Before
issue 15 the plan had 2 data steps, 12 fits (each crossed with both data
copies, labelled `fit#0` ... `fit#11`) and 2 reports: 16 launches.

Usage: python benchmarks/bench_pipeline_plan.py
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = {"instances": {"data/samples": 2, "fit": 6, "report": 2}, "launches": 9}


def main() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    mayuri = [sys.executable, "-m", "mayuri"]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copytree(ROOT / "examples" / "pipeline", root / "examples" / "pipeline")
        subprocess.run([*mayuri, "init"], cwd=root, env=env, check=True, capture_output=True)
        plan = subprocess.run([*mayuri, "run", "examples/pipeline/exp.yaml", "lr=0.1,0.5", "--dry-run"],
                              cwd=root, env=env, capture_output=True, text=True, check=True)
        planned: dict[str, int] = {}
        for line in plan.stdout.splitlines()[1:]:
            match = re.match(r"^[\s└─]*([\w/-]+)(\[|#|\s)", line)
            if match:
                planned[match.group(1)] = planned.get(match.group(1), 0) + 1
        run = subprocess.run([*mayuri, "run", "examples/pipeline/exp.yaml", "lr=0.1,0.5"], cwd=root, env=env,
                             capture_output=True, text=True)
        conn = sqlite3.connect(root / ".mayuri" / "mayuri.db")
        launches = conn.execute("SELECT count(*) FROM attempt").fetchone()[0]
        conn.close()
    print(f"interpreter: {sys.executable}")
    print(plan.stdout.splitlines()[-1])
    for job, count in REFERENCE["instances"].items():
        print(f"{job:<14} planned {planned.get(job, 0):>3}   reference {count:>3}")
    print(f"{'launches':<14} actual  {launches:>3}   reference {REFERENCE['launches']:>3}   (run exit {run.returncode})")
    same = all(planned.get(j) == n for j, n in REFERENCE["instances"].items()) and launches == REFERENCE["launches"]
    print("plan and launches match the reference" if same else "MISMATCH with the reference")


if __name__ == "__main__":
    main()
