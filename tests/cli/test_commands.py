"""runs / show / logs / diff / test through the real CLI, and what bad input looks like."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import Project


@pytest.fixture
def two_runs(project: Project) -> Project:
    project.write("helper.py", "SCALE = 2\n")
    project.write("job.py", """
        import sys
        import mayuri
        from helper import SCALE
        lr = float(sys.argv[1])
        print("training with", lr)
        print("warning: nothing", file=sys.stderr)
        for step in range(5):
            mayuri.log(step=step, loss=1.0 / (step + 1) * lr * SCALE)
        mayuri.output("score", lr * SCALE)
    """)
    project.write("exp.yaml", """
        name: demo
        params: {lr: 0.1}
        jobs:
          train:
            run: python job.py ${lr}
        tests:
          check:
            run: python -c "import mayuri; mayuri.log(step=0, accuracy=0.5); mayuri.log(step=1, accuracy=0.75); mayuri.output('n', 3)"
            expect: {accuracy: ">= 0.7", accuracy.max: "== 0.75", n: "in [3, 4]"}
    """)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    assert project.mayuri("run", "exp.yaml", "lr=0.2").returncode == 0
    return project


def test_runs_json_has_the_stable_fields(two_runs: Project) -> None:
    listed = two_runs.mayuri("runs", "--json")  # the interface for scripts: a process's stdout
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) == 2
    for run in runs:
        for field in ("id", "experiment", "job", "status", "params", "fingerprint", "started", "duration",
                      "user", "host"):
            assert field in run
    assert runs[0]["params"] == {"lr": 0.2}
    assert [r["params"]["lr"] for r in two_runs.runs("--param", "lr=0.1")] == [0.1]
    table = two_runs.mayuri("runs")
    assert table.returncode == 0 and "train" in table.stdout and "lr=0.2" in table.stdout


def test_show_has_params_closure_environment_and_logs(two_runs: Project) -> None:
    run = two_runs.runs()[0]
    shown = two_runs.mayuri("show", run["id"][:6], "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["id"] == run["id"]
    assert {c["path"] for c in detail["closure"] if c["role"] == "code"} >= {"job.py", "helper.py"}
    assert detail["environment"]["python"]["version"].startswith("3.")
    assert detail["outputs"] == {"score": 0.4}
    assert detail["attempts"][0]["exit_code"] == 0
    human = two_runs.mayuri("show", run["id"][:8])
    assert human.returncode == 0 and "helper.py" in human.stdout and "environment" in human.stdout


def test_show_why_breaks_the_fingerprint_down(two_runs: Project) -> None:
    run = two_runs.runs()[0]
    why = two_runs.show(run["id"], "--why")
    assert why["fingerprint"] == why["recomputed_now"]
    assert why["config"]["params"] == {"lr": 0.2}
    assert all(entry["same"] for entry in why["closure"])
    two_runs.write("helper.py", "SCALE = 3\n")
    why = two_runs.show(run["id"], "--why")
    assert why["fingerprint"] != why["recomputed_now"]
    assert [e["path"] for e in why["closure"] if not e["same"]] == ["helper.py"]


def test_logs_print_stdout_and_stderr(two_runs: Project) -> None:
    run = two_runs.runs()[0]
    logs = two_runs.mayuri("logs", run["id"][:5])
    assert logs.returncode == 0
    assert "training with 0.2" in logs.stdout and "warning: nothing" in logs.stderr


def test_diff_shows_params_outputs_and_metrics(two_runs: Project) -> None:
    new, old = two_runs.runs()
    done = two_runs.mayuri("diff", old["id"][:8], new["id"][:8], "--json")
    assert done.returncode == 0, done.stderr
    diff = json.loads(done.stdout)
    assert diff["params"] == [{"name": "lr", "left": 0.1, "right": 0.2}]
    assert "loss" in [m["name"] for m in diff["metrics"]]
    assert diff["outputs"][0]["name"] == "score"
    assert diff["closure"] == []
    assert two_runs.mayuri("diff", old["id"][:8], new["id"][:8]).returncode == 0


def test_run_prefixes_like_git(two_runs: Project) -> None:
    ambiguous = two_runs.mayuri("show", "")
    assert ambiguous.returncode == 2
    missing = two_runs.mayuri("show", "ffffffffffff")
    assert missing.returncode == 2 and "no run matches" in missing.stderr
    not_hex = two_runs.mayuri("logs", "xyz")
    assert not_hex.returncode == 2 and "not a run id" in not_hex.stderr


def test_mayuri_test_judges_outputs_and_metrics(two_runs: Project) -> None:
    passed = two_runs.mayuri("test", "exp.yaml")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.count("pass") == 3
    two_runs.write("exp.yaml", (two_runs.root / "exp.yaml").read_text().replace('">= 0.7"', '">= 0.8"'))
    failed = two_runs.mayuri("test", "exp.yaml")
    assert failed.returncode == 1
    assert "FAIL" in failed.stdout and "accuracy >= 0.8" in failed.stdout and "0.75" in failed.stdout
    # The threshold is not part of the job: judging again reused the recorded run.
    assert "cached (run" in failed.stderr


def test_failing_job_keeps_stderr_and_exits_1(project: Project) -> None:
    project.write("exp.yaml", """
        jobs:
          crash:
            run: python -c "raise SystemExit('it broke')"
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    [run] = project.runs()
    assert run["status"] == "failed" and run["exit_code"] == 1
    assert "it broke" in project.mayuri("logs", run["id"]).stderr


def test_missing_script_fails_the_run(project: Project) -> None:
    project.write("exp.yaml", "jobs:\n  a:\n    run: python does_not_exist.py\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    [run] = project.runs()
    assert run["status"] == "failed"
    assert "does_not_exist.py" in project.mayuri("logs", run["id"]).stderr


def test_missing_program_fails_with_a_clear_reason(project: Project) -> None:
    project.write("exp.yaml", "jobs:\n  a:\n    run: no-such-program --flag\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    assert "no such program" in done.stderr
    [run] = project.runs()
    assert run["status"] == "failed"


def test_a_missing_program_does_not_stop_the_jobs_launched_with_it(project: Project) -> None:
    # All three start in the same turn of the loop, so in one launch transaction.
    project.write("exp.yaml", """\
        jobs:
          good: {run: "echo fine", params: {i: 0}, sweep: {i: [1, 2]}}
          bad: {run: no-such-program}
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 1
    runs = {(r["job"], r["params"].get("i")): r for r in project.runs()}
    assert runs["bad", None]["status"] == "failed"
    assert "no such program" in project.show(runs["bad", None]["id"])["error"]
    for i in (1, 2):
        run = runs["good", i]
        assert run["status"] == "succeeded"
        assert project.mayuri("logs", run["id"]).stdout.strip() == "fine"
        assert [a["status"] for a in project.show(run["id"])["attempts"]] == ["succeeded"]


def test_malformed_mayuri_toml_exits_2_with_the_line(project: Project) -> None:
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text() + "\n[scheduler\nmax_parallel = 2\n")
    done = project.mayuri("runs")
    assert done.returncode == 2
    assert "mayuri.toml:" in done.stderr and "malformed TOML" in done.stderr and "Traceback" not in done.stderr


def test_unknown_key_in_mayuri_toml_suggests(project: Project) -> None:
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace("max_parallel = 4", "max_paralel = 4"))
    done = project.mayuri("runs")
    assert done.returncode == 2
    assert "did you mean 'max_parallel'?" in done.stderr
    line = [i for i, text in enumerate(config.read_text().splitlines(), 1) if "max_paralel" in text][0]
    assert f"mayuri.toml:{line}" in done.stderr


def test_no_project_says_how_to_start(tmp_path) -> None:
    from tests.conftest import Project as P

    done = P(tmp_path).mayuri("runs")
    assert done.returncode == 2 and "mayuri init" in done.stderr


def test_every_command_has_help_with_an_example() -> None:
    from mayuri.cli import cli

    for name, command in cli.commands.items():
        commands = getattr(command, "commands", {name: command})
        for sub_name, sub in commands.items():
            assert sub.help and "Example" in sub.help, f"`mayuri {name} {sub_name}` needs help with an example"


def test_logs_follow_prints_output_as_it_comes_until_the_run_ends(project: Project) -> None:
    import subprocess
    import sys
    import time

    project.write("slow.py", """
        import time
        for i in range(3):
            print("tick", i, flush=True)
            time.sleep(0.7)
    """)
    project.write("exp.yaml", "jobs:\n  slow:\n    run: python slow.py\n")
    scheduler = subprocess.Popen([sys.executable, "-m", "mayuri", "run", "exp.yaml"], cwd=project.root,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (runs := project.runs()) and time.monotonic() < deadline:
            time.sleep(0.1)
        follower = project.mayuri("logs", runs[0]["id"][:8], "-f", timeout=60)
        assert follower.returncode == 0
        assert [line for line in follower.stdout.splitlines() if line.startswith("tick")] == \
            ["tick 0", "tick 1", "tick 2"]
        assert project.runs()[0]["status"] == "succeeded"
    finally:
        scheduler.wait(timeout=60)


def test_a_run_records_the_file_and_overrides_it_came_from(project: Project) -> None:
    project.write("exps/train.yaml", "jobs:\n  fit:\n    run: 'true'\n    params: {lr: 0.1, layers: 2}\n")
    assert project.mayuri("run", "exps/train.yaml", "lr=0.2", "fit.layers=3").returncode == 0
    (run,) = project.runs()
    assert run["source"] == "exps/train.yaml" and run["overrides"] == ["lr=0.2", "fit.layers=3"]
    shown = project.mayuri("show", run["id"])
    assert "mayuri run exps/train.yaml lr=0.2 fit.layers=3" in shown.stdout
    # From another folder, the file is still recorded relative to the project.
    (project.root / "exps" / "sub").mkdir()
    done = subprocess.run([sys.executable, "-m", "mayuri", "run", "../train.yaml", "--force"],
                          cwd=project.root / "exps" / "sub", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    newest = project.runs()[0]
    assert newest["source"] == "exps/train.yaml" and newest["overrides"] == []
