"""The warm check of an all-cached 200-job pipeline (issue 15: within 10% of before).

Builds a temporary project whose experiment is a three-stage pipeline (8 data
jobs, 96 trainings fanned out over them, 96 evaluations: 200 instances), runs
it once, then times `mayuri run exp.yaml` with every job cached, interleaved
with the raw limit measured in the same run: the bare interpreter start plus
`import mayuri.cli`. The figure that matters is the check's own work
(run - raw limit); run the script with another checkout's interpreter to get
that checkout's figure (`/path/to/other/.venv/bin/python benchmarks/...`).

Usage: python benchmarks/bench_pipeline_check.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import interleave, machine_line, time_command

EXPERIMENT = """\
name: pipeline-bench
params: {scale: 1}
jobs:
  prep:
    run: python -c "import mayuri; mayuri.output('data', ${s} * ${scale})"
    params: {s: 0}
    sweep: {s: {range: [8]}}
    outputs: [data]
  train:
    run: python -c "import mayuri; mayuri.output('model', ${data} + ${lr})"
    params: {lr: 0}
    sweep: {lr: {range: [12]}}
    depends_on: {prep: {data: data}}
    outputs: [model]
  eval:
    run: python -c "import mayuri; mayuri.output('score', ${model} * 2)"
    depends_on: {train: {model: model}}
    outputs: [score]
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "MAYURI_FAKE_GPUS": "1x16GiB"}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "exp.yaml").write_text(EXPERIMENT)
        mayuri = [sys.executable, "-m", "mayuri"]
        subprocess.run([*mayuri, "init"], cwd=root, env=env, check=True, capture_output=True)
        first = subprocess.run([*mayuri, "run", "exp.yaml"], cwd=root, env=env, capture_output=True, text=True)
        if first.returncode != 0:
            sys.exit(f"the first run failed:\n{first.stdout}\n{first.stderr}")

        def warm() -> tuple[float, float]:
            wall, cpu, done = time_command([*mayuri, "run", "exp.yaml"], root, env)
            assert done.returncode == 0 and b"will run" not in done.stdout, done.stdout
            return wall, cpu

        def raw() -> tuple[float, float]:
            wall, cpu, _ = time_command([sys.executable, "-c", "import mayuri.cli"], root, env)
            return wall, cpu

        samples = interleave({"warm run, 200 cached jobs": warm, "raw limit: start + import mayuri.cli": raw},
                             args.repeat, shuffle=True)
    print(machine_line())
    print(f"interpreter: {sys.executable}")
    for sample in samples.values():
        print(sample.line())
    run, limit = samples["warm run, 200 cached jobs"], samples["raw limit: start + import mayuri.cli"]
    print(f"check's own work (run - raw limit): {(run.median - limit.median) * 1e3:.1f} ms; "
          f"ratio run / raw limit: {run.median / limit.median:.2f}")


if __name__ == "__main__":
    main()
