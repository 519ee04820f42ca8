"""Notebooks: polars read-back, the runs an experiment file uses now, and a run's upstream and downstream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.conftest import Project

EXP = """\
params: {seed: 0}
jobs:
  prep:
    run: python prep.py
    outputs: [data]
  train:
    run: python train.py
    params: {lr: 0.1}
    sweep: {lr: [0.1, 0.2]}
    depends_on: {prep: {data: data_path}}
"""


def _notebook(project: Project, code: str) -> Any:
    """Run `code` as a notebook would (a fresh interpreter in the project); it prints one JSON value."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAYURI_RUN")}
    done = subprocess.run([sys.executable, "-c", "import json, mayuri\n" + code], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _setup(project: Project) -> None:
    project.write("prep.py", "import mayuri\nmayuri.output('data', 'd.txt')\n")
    project.write("train.py", """\
        import mayuri
        p = mayuri.params()
        for step in range(4):
            mayuri.log(step=step, loss=p["lr"] * (4 - step))
        """)
    project.write("exp.yaml", EXP)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr


def test_series_and_runs_frame_to_polars(project: Project) -> None:
    _setup(project)
    result = _notebook(project, """\
import polars
run = mayuri.runs(job="train", lr=0.2)[0]
frame = run.metrics("loss").to_polars()
assert isinstance(frame, polars.DataFrame)
table = mayuri.runs_frame(backend="polars", experiment="proj")
pandas_table = mayuri.runs_frame(mayuri.runs(job="train"))
print(json.dumps({"steps": frame["step"].to_list(), "loss": frame["loss"].to_list(),
                  "columns": sorted(table.columns), "rows": table.height,
                  "lr": sorted(table.filter(polars.col("job") == "train")["lr"].to_list()),
                  "pandas": sorted(pandas_table["metric/loss"].tolist())}))
""")
    assert result["steps"] == [0, 1, 2, 3]
    assert result["loss"] == [0.8, 0.6000000000000001, 0.4, 0.2]
    assert {"id", "job", "status", "lr", "seed", "metric/loss"} <= set(result["columns"])
    assert result["rows"] == 3 and result["lr"] == [0.1, 0.2]
    assert result["pandas"] == [0.1, 0.2]


def test_current_gives_the_runs_the_file_would_reuse_now(project: Project) -> None:
    _setup(project)
    ids = {(r["job"], r["params"].get("lr")): r["id"] for r in project.runs()}
    current = _notebook(project, "print(json.dumps([[r.job, r.id] for r in mayuri.runs(current='exp.yaml')]))")
    assert sorted(current) == sorted([["prep", ids[("prep", None)]], ["train", ids[("train", 0.1)]],
                                      ["train", ids[("train", 0.2)]]])
    # After an edit, the edited job is no longer reusable: only prep is current.
    project.write("train.py", (project.root / "train.py").read_text() + "# edited\n")
    current = _notebook(project, "print(json.dumps([r.job for r in mayuri.runs(current='exp.yaml')]))")
    assert current == ["prep"]
    with_override = _notebook(
        project, "print(json.dumps([r.job for r in mayuri.runs(current='exp.yaml', overrides=['lr=0.3'])]))")
    assert with_override == ["prep"]


def test_upstream_and_downstream(project: Project) -> None:
    _setup(project)
    result = _notebook(project, """\
prep = mayuri.runs(job="prep")[0]
train = mayuri.runs(job="train")[0]
print(json.dumps({"down": sorted(r.job for r in prep.downstream), "up": [r.id for r in train.upstream],
                  "prep": prep.id, "none": [r.id for r in prep.upstream]}))
""")
    assert result["down"] == ["train", "train"]
    assert result["up"] == [result["prep"]] and result["none"] == []
