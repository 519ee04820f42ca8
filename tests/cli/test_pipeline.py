"""The experiment language end to end: DAGs, fan-out, gather, failures, overrides, tests, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

from tests.conftest import Project

ROOT = Path(__file__).resolve().parents[2]


def copy_example(project: Project, name: str) -> None:
    shutil.copytree(ROOT / "examples" / name, project.root / "examples" / name)


def by_job(project: Project) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for run in project.runs():
        grouped.setdefault(run["job"], []).append(run)
    return grouped


def test_example_pipeline_fans_out_gathers_and_reruns_only_what_changed(project: Project) -> None:
    copy_example(project, "pipeline")
    first = project.mayuri("run", "examples/pipeline/exp.yaml")
    assert first.returncode == 0, first.stderr
    runs = by_job(project)
    assert len(runs["data/samples"]) == 1 and len(runs["fit"]) == 3 and len(runs["report"]) == 1
    report = project.show(runs["report"][0]["id"])
    assert {e["job"] for e in report["lineage"]["upstream"]} == {"fit"}
    assert len(report["lineage"]["upstream"]) == 3
    losses = sorted(project.show(r["id"])["outputs"]["loss"] for r in runs["fit"])
    assert report["outputs"]["best_loss"] == losses[0]

    fit = project.root / "examples/pipeline/fit.py"
    fit.write_text(fit.read_text() + "\n# a comment changes the code\n")
    second = project.mayuri("run", "examples/pipeline/exp.yaml")
    assert second.returncode == 0, second.stderr
    assert "data/samples" in second.stderr and "cached (run" in second.stderr
    assert "examples/pipeline/fit.py changed" in second.stderr
    # A comment changes no result: the fits rerun, give the same outputs, and the report stays cached.
    assert "upstream fit reran, same results: cached (run" in second.stderr
    runs = by_job(project)
    assert len(runs["data/samples"]) == 1 and len(runs["fit"]) == 6 and len(runs["report"]) == 1


def test_cli_sweep_fans_out_downstream(project: Project) -> None:
    copy_example(project, "pipeline")
    done = project.mayuri("run", "examples/pipeline/exp.yaml", "noise=0.1,0.5", "fit.ridge=0.0")
    assert done.returncode == 0, done.stderr
    runs = by_job(project)
    assert sorted(r["params"]["noise"] for r in runs["data/samples"]) == [0.1, 0.5]
    assert len(runs["fit"]) == 2 and len(runs["report"]) == 1
    # The upstream's distinguishing param is named after the job that swept it.
    assert "fit[ridge=0.0,data/samples.noise=0.1]" in done.stderr, done.stderr
    assert "fit[ridge=0.0,data/samples.noise=0.5]" in done.stderr


def test_a_later_single_value_replaces_an_earlier_sweep_of_the_key(project: Project) -> None:
    project.write("exp.yaml", """
        jobs:
          train:
            run: python -c "print('${lr} ${tag}')"
            params: {lr: 0.1, tag: a}
            sweep: {lr: [0.1, 0.2]}
    """)
    both = project.mayuri("run", "exp.yaml", "tag=x,y", "--dry-run")
    assert "4 jobs: 0 cached, 4 will run" in both.stdout, both.stdout
    one = project.mayuri("run", "exp.yaml", "tag=x,y", "train.tag=x", "train.lr=0.2", "--dry-run")
    assert one.returncode == 0, one.stderr
    assert "1 job: 0 cached, 1 will run" in one.stdout and "train[lr=0.2]" in one.stdout, one.stdout


def test_failure_skips_dependents_and_other_branches_go_on(project: Project) -> None:
    project.write("exp.yaml", """
        jobs:
          bad:
            run: python -c "import sys; sys.stderr.write('boom\\\\n'); sys.exit(3)"
          after_bad:
            run: "true"
            depends_on: [bad]
          good:
            run: python -c "print('fine')"
          after_good:
            run: "true"
            depends_on: [good]
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    runs = {r["job"]: r for r in project.runs()}
    assert runs["bad"]["status"] == "failed" and runs["bad"]["exit_code"] == 3
    assert runs["good"]["status"] == "succeeded" and runs["after_good"]["status"] == "succeeded"
    assert "after_bad" not in runs
    assert "after_bad" in done.stderr and "skipped" in done.stderr and "upstream bad failed" in done.stderr
    logs = project.mayuri("logs", runs["bad"]["id"][:6])
    assert "boom" in logs.stderr


def test_independent_jobs_run_at_the_same_time(project: Project) -> None:
    project.write("exp.yaml", """
        jobs:
          a: {run: [python, -c, "import time; time.sleep(1.5); 'a'"]}
          b: {run: [python, -c, "import time; time.sleep(1.5); 'b'"]}
    """)
    # (Two identical commands are the same work: the second would wait for the first and reuse it.)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    a, b = project.runs()
    assert a["started"] < b["ended"] and b["started"] < a["ended"]


def test_max_parallel_one_runs_one_at_a_time(project: Project) -> None:
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace("max_parallel = 4", "max_parallel = 1"))
    project.write("exp.yaml", """
        jobs:
          a: {run: [python, -c, "import time; time.sleep(0.5); 'a'"]}
          b: {run: [python, -c, "import time; time.sleep(0.5); 'b'"]}
    """)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    first, second = sorted(project.runs(), key=lambda r: r["started"])
    assert second["started"] >= first["ended"]


def test_missing_declared_output_fails_naming_it(project: Project) -> None:
    project.write("exp.yaml", """
        jobs:
          make:
            run: "true"
            outputs: [model]
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    [run] = project.runs()
    assert run["status"] == "failed"
    assert "did not set declared output 'model'" in project.show(run["id"])["error"]


def test_only_runs_the_job_and_what_it_needs(project: Project) -> None:
    copy_example(project, "pipeline")
    done = project.mayuri("run", "examples/pipeline/exp.yaml", "--only", "fit", "fit.ridge=0.1")
    assert done.returncode == 0, done.stderr
    assert set(by_job(project)) == {"data/samples", "fit"}


def test_dry_run_shows_tree_and_blocked_jobs(project: Project) -> None:
    copy_example(project, "pipeline")
    done = project.mayuri("run", "examples/pipeline/exp.yaml", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "fit[ridge=0.01]" in done.stdout and "└─" in done.stdout
    assert "5 jobs: 0 cached, 5 will run" in done.stdout
    assert project.runs() == []


def test_extends_and_user_overrides(project: Project) -> None:
    import getpass

    project.write("base.yaml", """
        params: {lr: 0.1, epochs: 2}
        jobs:
          train:
            run: echo ${lr} ${epochs}
    """)
    project.write("exp.yaml", """
        extends: base.yaml
        name: derived
        params: {epochs: 5}
    """)
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text() + f"\n[user.{getpass.getuser()}]\nlr = 0.01\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    [run] = project.runs()
    assert run["experiment"] == "derived"
    assert run["params"] == {"lr": 0.01, "epochs": 5}
    assert project.mayuri("logs", run["id"]).stdout.strip() == "0.01 5"
    done = project.mayuri("run", "exp.yaml", "lr=0.5")
    assert "param lr 0.01 -> 0.5" in done.stderr


def test_params_reach_the_command_as_single_arguments_never_as_shell(project: Project, tmp_path: Path) -> None:
    pwn = tmp_path / "pwn"
    values = [f"; touch {pwn} #", f"$(touch {pwn})", f"`touch {pwn}`", "two\nlines", "--flag"]
    project.write("echo_argv.py", "import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    project.write("exp.yaml", """
        jobs:
          echo:
            run: python echo_argv.py ${v}
            params: {v: placeholder}
          echo_shell:
            run: echo ${v}
            shell: true
            params: {v: placeholder}
    """)
    for index, value in enumerate(values):
        done = project.mayuri("run", "exp.yaml", f"v={json.dumps(value)}")
        assert done.returncode == 0, done.stderr
        runs = [r for r in project.runs("--job", "echo")]
        assert json.loads(project.mayuri("logs", runs[0]["id"]).stdout) == [value], index
    assert not pwn.exists()


def test_bad_file_exits_2_and_leaves_the_store_untouched(project: Project) -> None:
    project.write("good.yaml", "jobs:\n  a:\n    run: 'true'\n")
    assert project.mayuri("run", "good.yaml").returncode == 0
    con = sqlite3.connect(project.db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    before = hashlib.sha256(project.db.read_bytes()).hexdigest()
    project.write("bad.yaml", "jobs:\n  a:\n    run: 'true'\n    depends_on: [zz]\n")
    done = project.mayuri("run", "bad.yaml")
    assert done.returncode == 2
    assert "bad.yaml:4:" in done.stderr and "Traceback" not in done.stderr
    assert hashlib.sha256(project.db.read_bytes()).hexdigest() == before
    assert len(project.runs()) == 1


def test_missing_experiment_file_and_bad_override_exit_2(project: Project) -> None:
    missing = project.mayuri("run", "nope.yaml")
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr and "not found" in missing.stderr
    project.write("exp.yaml", "params: {lr: 1}\njobs:\n  a:\n    run: echo ${lr}\n")
    bad = project.mayuri("run", "exp.yaml", "lrr=3")
    assert bad.returncode == 2 and "did you mean 'lr'?" in bad.stderr
    assert project.runs() == []
