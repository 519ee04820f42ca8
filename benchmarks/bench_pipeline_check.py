"""The warm check of an all-cached 200-job pipeline (issue 15: within 10% of before).

Builds a temporary project whose experiment is a three-stage pipeline (8 data
jobs, 96 trainings fanned out over them, 96 evaluations: 200 instances), runs
it once, then times `mayuri run exp.yaml` with every job cached, interleaved
with the raw limit measured in the same run: the bare interpreter start plus
`import mayuri.cli`. The figure that matters is the check's own work
(run - raw limit). `--baseline PYTHON` times another checkout's interpreter
(the code before a change) on its own copy of the project, interleaved in the
same rounds, and prints the ratio of the two (wall and CPU medians): the
figure that says whether a change kept the warm check's cost. With a
baseline, this checkout also checks a copy of the baseline's store (made by
the code before, migrated by this one on its first open): what a user who
upgrades sees on the store they have.

Usage: python benchmarks/bench_pipeline_check.py [--repeat 7] [--baseline /path/to/main/.venv/bin/python]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
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
    run: python -c "import mayuri; mayuri.output('model', ${data} * 100 + ${lr})"
    params: {lr: 0}
    sweep: {lr: {range: [12]}}
    depends_on: {prep: {data: data}}
    outputs: [model]
  eval:
    run: python -c "import mayuri; mayuri.output('score', ${model} * 2)"
    depends_on: {train: {model: model}}
    outputs: [score]
"""


def make_project(root: Path, python: str, env: dict[str, str]) -> None:
    root.mkdir()
    (root / "exp.yaml").write_text(EXPERIMENT)
    subprocess.run([python, "-m", "mayuri", "init"], cwd=root, env=env, check=True, capture_output=True)
    first = subprocess.run([python, "-m", "mayuri", "run", "exp.yaml"], cwd=root, env=env, capture_output=True,
                           text=True)
    if first.returncode != 0:
        sys.exit(f"the first run failed:\n{first.stdout}\n{first.stderr}")


def warm_run(python: str, root: Path, env: dict[str, str]) -> Callable[[], tuple[float, float]]:
    def warm() -> tuple[float, float]:
        wall, cpu, done = time_command([python, "-m", "mayuri", "run", "exp.yaml"], root, env)
        assert done.returncode == 0 and b"will run" not in done.stdout, done.stderr
        return wall, cpu
    return warm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--baseline", help="another checkout's interpreter, timed interleaved")
    args = parser.parse_args()
    env = {**os.environ, "MAYURI_FAKE_GPUS": "1x16GiB"}
    with tempfile.TemporaryDirectory() as folder:
        measures: dict[str, Callable[[], tuple[float, float]]] = {}
        make_project(Path(folder) / "this", sys.executable, env)
        measures["warm run, 200 cached jobs"] = warm_run(sys.executable, Path(folder) / "this", env)
        if args.baseline:
            make_project(Path(folder) / "base", args.baseline, env)
            measures["baseline warm run, 200 cached jobs"] = warm_run(args.baseline, Path(folder) / "base", env)
            shutil.copytree(Path(folder) / "base", Path(folder) / "upgraded", symlinks=True)
            upgraded = warm_run(sys.executable, Path(folder) / "upgraded", env)
            upgraded()  # the first open migrates the store
            measures["warm run on the baseline's store"] = upgraded

        def raw() -> tuple[float, float]:
            wall, cpu, _ = time_command([sys.executable, "-c", "import mayuri.cli"], Path(folder), env)
            return wall, cpu

        measures["raw limit: start + import mayuri.cli"] = raw
        samples = interleave(measures, args.repeat, shuffle=True)
    print(machine_line())
    print(f"interpreter: {sys.executable}" + (f"; baseline: {args.baseline}" if args.baseline else ""))
    for sample in samples.values():
        print(sample.line())
    run, limit = samples["warm run, 200 cached jobs"], samples["raw limit: start + import mayuri.cli"]
    print(f"check's own work (run - raw limit): {(run.median - limit.median) * 1e3:.1f} ms; "
          f"ratio run / raw limit: {run.median / limit.median:.2f}")
    if args.baseline:
        base = samples["baseline warm run, 200 cached jobs"]
        print(f"this / baseline: wall {run.median / base.median:.3f}, cpu {run.cpu_median / base.cpu_median:.3f} "
              "(target: at most 1.10)")
        old = samples["warm run on the baseline's store"]
        print(f"this on the baseline's store / baseline: wall {old.median / base.median:.3f}, "
              f"cpu {old.cpu_median / base.cpu_median:.3f}")


if __name__ == "__main__":
    main()
