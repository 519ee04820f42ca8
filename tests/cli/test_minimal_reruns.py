"""Issue 15: rerun only what must rerun, through the real CLI.

Each test is one bullet of the issue: params count only where a job used
them, a multirun is independent copies of the pipeline (labelled by params),
an upstream that reran with the same results leaves its downstream cached,
a run is reused by any job with the same work, downstream runs answer to their
upstreams' params, `cache: strict` keeps the old rule, and an old store is
migrated without false hits.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import Project

# `data` reads `digits` through mayuri.params(); `lr` is a top-level param it never reads.
DATA_SCRIPT = """\
import mayuri
p = mayuri.params()
with open(mayuri.current_run().dir / "data.txt", "w") as handle:
    handle.write(str(p["digits"]) * 3)
mayuri.output("data", str(mayuri.current_run().dir / "data.txt"))
"""

TRAIN_SCRIPT = """\
import sys
import mayuri
data, lr = sys.argv[1], float(sys.argv[2])
mayuri.output("model", f"{open(data).read()}@{lr}")
"""

PIPELINE = """\
name: used
params: {lr: 0.001, digits: 2, seed: 0}
jobs:
  data:
    run: python data.py
    outputs: [data]
  train:
    run: python train.py ${data} ${lr}
    depends_on: {data: {data: data}}
    outputs: [model]
"""


def setup(project: Project, experiment: str = PIPELINE) -> None:
    project.write("data.py", DATA_SCRIPT)
    project.write("train.py", TRAIN_SCRIPT)
    project.write("exp.yaml", experiment)


def ran(project: Project, job: str) -> list[dict[str, Any]]:
    return [r for r in project.runs() if r["job"] == job]


def test_a_top_level_param_a_job_never_reads_keeps_its_result(project: Project) -> None:
    setup(project)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    changed = project.mayuri("run", "exp.yaml", "lr=0.002")
    assert changed.returncode == 0, changed.stderr
    assert "data" in changed.stderr and "cached (run" in changed.stderr.splitlines()[0], changed.stderr
    assert len(ran(project, "data")) == 1 and len(ran(project, "train")) == 2
    # A sweep of lr: three trainings, no new data step.
    plan = project.mayuri("run", "exp.yaml", "lr=0.001,0.003,0.01", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "6 jobs: 4 cached, 2 will run" in plan.stdout, plan.stdout
    assert "param lr 0.002 -> 0.003" in plan.stdout or "param lr 0.001 -> 0.003" in plan.stdout
    # A param it reads does count, and the reason names it.
    digits = project.mayuri("run", "exp.yaml", "digits=3", "--dry-run")
    assert "param digits 2 -> 3" in digits.stdout, digits.stdout
    # `show --why` names the params that counted.
    data_run = ran(project, "data")[0]
    why = project.show(data_run["id"], "--why")
    assert why["params_used"] == ["digits"] and why["params_counted"] == {"digits": 2}
    assert why["fingerprint"] == why["recomputed_now"]


def test_reading_the_whole_mapping_or_params_json_counts_every_param(project: Project) -> None:
    setup(project, PIPELINE.replace("python data.py", "python whole.py ${digits}"))
    for how, read in (("iterated", "print(sorted(mayuri.params()))"),
                      ("params.json", "json.load(open(mayuri.current_run().dir / 'params.json'))")):
        project.write("whole.py", f"import json, mayuri\n{read}\nmayuri.output('data', 'x')\n")
        assert project.mayuri("run", "exp.yaml", "--only", "data").returncode == 0
        again = project.mayuri("run", "exp.yaml", "--only", "data", "lr=0.5", "--dry-run")
        assert "param lr 0.001 -> 0.5" in again.stdout, (how, again.stdout)
    # Only `digits` (in the command) counts for a job that reads nothing else.
    project.write("whole.py", "import mayuri\nmayuri.output('data', 'x')\n")
    assert project.mayuri("run", "exp.yaml", "--only", "data").returncode == 0
    again = project.mayuri("run", "exp.yaml", "--only", "data", "lr=0.5", "--dry-run")
    assert "1 job: 1 cached" in again.stdout, again.stdout


def test_cache_strict_counts_every_param_in_scope(project: Project) -> None:
    setup(project, PIPELINE.replace("    outputs: [data]\n", "    outputs: [data]\n    cache: strict\n", 1))
    assert project.mayuri("run", "exp.yaml").returncode == 0
    plan = project.mayuri("run", "exp.yaml", "lr=0.002", "--dry-run")
    assert re.search(r"^data +will run +param lr 0.001 -> 0.002", plan.stdout, re.M), plan.stdout


def test_a_multirun_is_independent_copies_of_the_pipeline(project: Project) -> None:
    setup(project, PIPELINE.replace("python data.py", "python data.py ${seed}") + """\
    sweep: {lr: [0.1, 0.2, 0.3]}
  report:
    run: python -c "import sys; print(sys.argv[1:])" ${models}
    depends_on: {train: {model: models}}
    gather: true
""")
    # Each seed makes different data (the same data would be the same work, done once).
    project.write("data.py", DATA_SCRIPT.replace('str(p["digits"]) * 3', 'str(p["digits"]) + sys.argv[1]')
                  .replace("import mayuri", "import sys\nimport mayuri"))
    done = project.mayuri("run", "exp.yaml", "seed=0,1")
    assert done.returncode == 0, done.stderr
    assert "#" not in done.stderr
    trains = ran(project, "train")
    assert len(trains) == 6 and len(ran(project, "data")) == 2 and len(ran(project, "report")) == 2
    for label in ("train[lr=0.1,seed=0]", "train[lr=0.3,seed=1]", "report[seed=1]"):
        assert label in done.stderr, done.stderr
    # Each training read its own seed's data, and each report gathered its own seed's trainings.
    by_id = {r["id"]: r for r in project.runs()}
    for run in trains:
        lineage = project.show(run["id"])["lineage"]["upstream"]
        assert [by_id[u["run_id"]]["params"]["seed"] for u in lineage] == [run["params"]["seed"]]
    for run in ran(project, "report"):
        lineage = project.show(run["id"])["lineage"]["upstream"]
        assert len(lineage) == 3 and {by_id[u["run_id"]]["params"]["seed"] for u in lineage} == {run["params"]["seed"]}


def test_an_upstream_that_reran_with_the_same_results_leaves_its_downstream_cached(project: Project) -> None:
    setup(project)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    project.write("data.py", DATA_SCRIPT + "# a comment: the data step reruns, its files are the same\n")
    again = project.mayuri("run", "exp.yaml")
    assert again.returncode == 0, again.stderr
    assert "data.py changed" in again.stderr
    assert "upstream data reran, same results: cached (run" in again.stderr, again.stderr
    assert len(ran(project, "data")) == 2 and len(ran(project, "train")) == 1
    # Different results do rerun the downstream job.
    project.write("data.py", DATA_SCRIPT.replace("* 3", "* 4"))
    third = project.mayuri("run", "exp.yaml")
    assert third.returncode == 0 and len(ran(project, "train")) == 2, third.stderr


def test_the_same_work_in_another_file_or_under_another_name_is_reused(project: Project) -> None:
    setup(project)
    assert project.mayuri("run", "exp.yaml", "--only", "data").returncode == 0
    project.write("other.yaml", """\
        name: other
        params: {digits: 2}
        jobs:
          prepare:
            run: python data.py
            outputs: [data]
    """)
    other = project.mayuri("run", "other.yaml")
    assert other.returncode == 0, other.stderr
    assert "cached (run" in other.stderr and "of used/data)" in other.stderr, other.stderr
    assert len(project.runs()) == 1
    # A miss is still explained against the nearest run of the same command.
    changed = project.mayuri("run", "other.yaml", "digits=5", "--dry-run")
    assert "param digits 2 -> 5" in changed.stdout, changed.stdout


def test_downstream_runs_carry_their_upstreams_params_for_filters(project: Project) -> None:
    setup(project, PIPELINE.replace("    outputs: [model]\n", """\
    outputs: [model]
    sweep: {lr: [0.003, 0.01]}
  sample:
    run: python -c "print('${m}')"
    depends_on: {train: {model: m}}
"""))
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    assert "sample[train.lr=0.003]" in done.stderr, done.stderr
    filtered = project.runs("--job", "sample", "-p", "train.lr=0.003")
    assert [r["label"] for r in filtered] == ["sample[train.lr=0.003]"]
    assert filtered[0]["labels"] == {"train.lr": 0.003}
    script = (
        "import json, mayuri; "
        "print(json.dumps([r.params.get('lr') for r in mayuri.runs(job='sample', params={'train.lr': 0.01})]))"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=project.root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [0.001]  # its own lr is the file's; train.lr is its upstream's


def test_an_old_store_is_matched_on_all_params_and_never_gives_a_false_hit(project: Project) -> None:
    setup(project)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    _as_before_migration_0009(project)
    same = project.mayuri("run", "exp.yaml")
    assert same.returncode == 0, same.stderr
    assert same.stderr.count("cached (run") == 2, same.stderr
    # The old data run was recorded with all its params: lr counts for it, once.
    changed = project.mayuri("run", "exp.yaml", "lr=0.002")
    assert changed.returncode == 0
    assert len(ran(project, "data")) == 2
    third = project.mayuri("run", "exp.yaml", "lr=0.004", "--dry-run")
    assert re.search(r"^data +cached", third.stdout, re.M), third.stdout


def _as_before_migration_0009(project: Project) -> None:
    """Turn the store back into what a Mayuri before migration 0009 recorded (same runs, old columns)."""
    conn = sqlite3.connect(project.db)
    try:
        runs = conn.execute("SELECT id, fingerprint, upstream, config FROM run").fetchall()
        fingerprints = {rid: fp for rid, fp, _, _ in runs}
        for rid, _, upstream, config_text in runs:
            # Old configs did not list their upstreams; old runs held them by name, with their fingerprints.
            config = json.loads(config_text)
            names = config.pop("upstream", [])
            parents = dict(conn.execute("SELECT name, parent_id FROM lineage WHERE child_id = ?", (rid,)).fetchall())
            old = {names[int(position[1:])]: [fingerprints[parents[names[int(position[1:])]]]]
                   for position, _ in json.loads(upstream).items()}
            conn.execute("UPDATE run SET upstream = ?, config = ?, closure_info = json_remove(closure_info, "
                         "'$.upstream_reads') WHERE id = ?",
                         (json.dumps(old, sort_keys=True, separators=(",", ":")),
                          json.dumps(config, sort_keys=True, separators=(",", ":")), rid))
        for statement in ("DROP TRIGGER run_claim_freed", "DROP TABLE run_claim", "DROP INDEX run_base_used",
                          *(f"ALTER TABLE run DROP COLUMN {c}"
                            for c in ("base_hash", "params_used", "used_key", "result_key", "labels", "fingerprint_version"))):
            conn.execute(statement)
        # Nor had it the migrations after 0009 that rewrite what 0009 computes.
        conn.execute("DELETE FROM schema_migration WHERE name LIKE '0009%' OR name LIKE '0018%'")
        names = [row[0] for row in conn.execute("SELECT name FROM schema_migration")]
        conn.execute(f"PRAGMA user_version = {max(int(name[:4]) for name in names)}")
        conn.commit()
    finally:
        conn.close()


def test_the_example_pipeline_multirun_plans_and_launches_the_reference_count(project: Project) -> None:
    from tests.cli.test_pipeline import copy_example

    copy_example(project, "pipeline")
    plan = project.mayuri("run", "examples/pipeline/exp.yaml", "lr=0.1,0.5", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    # Two copies of the pipeline: 2 data steps (the second waits for the first's work), 6 fits, 2 reports.
    assert "10 jobs: 0 cached, 9 will run, 1 wait for the same work" in plan.stdout, plan.stdout
    assert re.search(r"^data/samples\[lr=0.5\] +waits +same work as data/samples\[lr=0.1\] unless it uses lr",
                     plan.stdout, re.M), plan.stdout
    done = project.mayuri("run", "examples/pipeline/exp.yaml", "lr=0.1,0.5")
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(project.db)
    try:
        assert conn.execute("SELECT count(*) FROM attempt").fetchone()[0] == 9
    finally:
        conn.close()
    assert "fit[ridge=0.0,lr=0.5]" in done.stderr and "#" not in done.stderr


@pytest.mark.parametrize("tracer", ["1", "0"])
def test_a_program_the_job_starts_that_reads_params_json_counts_every_param(project: Project, tracer: str) -> None:
    # A Python job is audited, but what `cat` reads only the C tracer sees (params.json is in the
    # store, which the tracer reports nothing else of); without the tracer, a started program counts all.
    project.write("job.py", "import os, subprocess\n"
                            "subprocess.run(['cat', os.path.join(os.environ['MAYURI_RUN_DIR'], 'params.json')])\n")
    project.write("exp.yaml", "params: {lr: 1}\njobs:\n  a:\n    run: python job.py\n")
    env = {"MAYURI_TRACER": tracer}
    assert project.mayuri("run", "exp.yaml", env=env).returncode == 0
    again = project.mayuri("run", "exp.yaml", "lr=2", env=env)
    assert again.returncode == 0 and "param lr 1 -> 2" in again.stderr, again.stderr


# `prep` writes two files; `use` reads only a.txt of them, `survey` lists the folder.
PREP_TWO = """\
import sys
import mayuri
folder = mayuri.current_run().dir
(folder / "a.txt").write_text(sys.argv[1])
(folder / "b.txt").write_text(sys.argv[2])
mayuri.output("folder", str(folder))
"""

USE_A = """\
import os, sys
import mayuri
mayuri.output("got", open(os.path.join(sys.argv[1], "a.txt")).read())
"""

SURVEY = """\
import os, sys
import mayuri
mayuri.output("names", sorted(os.listdir(sys.argv[1])))
"""

PARTIAL = """\
name: partial
params: {a: AAA, b: one}
jobs:
  prep:
    run: python prep.py ${a} ${b}
    outputs: [folder]
  use:
    run: python use.py ${folder}
    depends_on: {prep: {folder: folder}}
    outputs: [got]
  survey:
    run: python survey.py ${folder}
    depends_on: {prep: {folder: folder}}
    outputs: [names]
"""


def test_a_downstream_job_counts_only_the_upstream_files_it_read(project: Project) -> None:
    project.write("prep.py", PREP_TWO)
    project.write("use.py", USE_A)
    project.write("survey.py", SURVEY)
    project.write("exp.yaml", PARTIAL)
    first = project.mayuri("run", "exp.yaml")
    assert first.returncode == 0, first.stderr
    # The other file changed (the upstream reran): the job that never read it stays cached;
    # the one that listed the folder counts every file, and b.txt's content is one of them.
    again = project.mayuri("run", "exp.yaml", "b=two")
    assert again.returncode == 0, again.stderr
    assert len(ran(project, "prep")) == 2
    assert len(ran(project, "use")) == 1, again.stderr
    assert "upstream prep reran, same results: cached (run" in again.stderr, again.stderr
    assert len(ran(project, "survey")) == 2
    # The file it reads changed: it reruns, and says which file.
    third = project.mayuri("run", "exp.yaml", "a=BBB", "b=two")
    assert third.returncode == 0, third.stderr
    assert len(ran(project, "use")) == 2, third.stderr
    assert "upstream prep: a.txt changed" in third.stderr, third.stderr
    assert len(ran(project, "survey")) == 3
    assert sorted(project.show(r["id"])["outputs"]["got"] for r in ran(project, "use")) == ["AAA", "BBB"]
    # Back to the first upstream content: each earlier run is found again by what it read.
    back = project.mayuri("run", "exp.yaml")
    assert back.returncode == 0 and len(ran(project, "use")) == 2 and len(ran(project, "survey")) == 3, back.stderr


def test_without_the_file_access_tracer_every_upstream_file_counts(project: Project) -> None:
    # Python reads alone miss what a started program reads: no reads may stand for all the files then.
    project.write("prep.py", PREP_TWO)
    project.write("use.py", USE_A)
    project.write("survey.py", SURVEY)
    project.write("exp.yaml", PARTIAL)
    env = {"MAYURI_TRACER": "0"}
    assert project.mayuri("run", "exp.yaml", "--only", "use", env=env).returncode == 0
    again = project.mayuri("run", "exp.yaml", "--only", "use", "b=two", env=env)
    assert again.returncode == 0, again.stderr
    assert len(ran(project, "use")) == 2, again.stderr


def test_a_program_the_downstream_job_starts_counts_what_it_reads(project: Project) -> None:
    # The Python job reads no param file: only what `cat` reads of the upstream's folder counts.
    project.write("prep.py", PREP_TWO)
    project.write("cat_a.py", "import subprocess, sys\nsubprocess.run(['cat', sys.argv[1] + '/a.txt'], check=True)\n")
    project.write("exp.yaml", PARTIAL.replace("python use.py ${folder}", "python cat_a.py ${folder}")
                  .replace("    outputs: [got]\n", ""))
    assert project.mayuri("run", "exp.yaml", "--only", "use").returncode == 0
    same = project.mayuri("run", "exp.yaml", "--only", "use", "b=two")
    assert same.returncode == 0 and len(ran(project, "use")) == 1, same.stderr
    changed = project.mayuri("run", "exp.yaml", "--only", "use", "a=BBB")
    assert changed.returncode == 0 and len(ran(project, "use")) == 2, changed.stderr
    assert "upstream prep: a.txt changed" in changed.stderr


def test_a_gathering_job_counts_only_the_files_it_read_of_each_upstream(project: Project) -> None:
    project.write("prep.py", PREP_TWO)
    project.write("collect.py", "import os, mayuri\n"
                                "got = [open(os.path.join(f, 'a.txt')).read() for f in mayuri.params()['folders']]\n"
                                "mayuri.output('got', got)\n")
    project.write("exp.yaml", """\
        name: gathering
        params: {b: one}
        jobs:
          prep:
            run: python prep.py ${a} ${b}
            params: {a: A1}
            sweep: {a: [A1, A2]}
            outputs: [folder]
          collect:
            run: python collect.py
            depends_on: {prep: {folder: folders}}
            gather: true
            outputs: [got]
        """)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    same = project.mayuri("run", "exp.yaml", "b=two")
    assert same.returncode == 0 and len(ran(project, "prep")) == 4, same.stderr
    assert len(ran(project, "collect")) == 1, same.stderr
    changed = project.mayuri("run", "exp.yaml", "b=two", "prep.a=A1,A3")
    assert changed.returncode == 0, changed.stderr
    assert len(ran(project, "collect")) == 2, changed.stderr
    newest = max(ran(project, "collect"), key=lambda r: r["started"])
    assert project.show(newest["id"])["outputs"]["got"] == ["A1", "A3"]
