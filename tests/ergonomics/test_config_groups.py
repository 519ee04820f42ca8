"""Config groups through the real CLI: composition, choices on the command line, sweeps, unknown choices."""

from __future__ import annotations

import json

from tests.conftest import Project

ECHO = 'python -c "import json, sys; print(json.dumps(sys.argv[1:]))"'


def _setup(project: Project) -> None:
    project.write("configs/model/small.yaml", "width: 64\ndepth: 2\n")
    project.write("configs/model/large.yaml", "width: 512\ndepth: 8\n")
    project.write("configs/data/tiny.yaml", "rows: 10\n")
    project.write("base.yaml", "defaults: {model: small, data: tiny}\nparams: {seed: 0}\n")
    project.write("exp.yaml", f"""\
        extends: base.yaml
        defaults: {{model: small}}
        params: {{model: {{depth: 3}}}}
        jobs:
          train:
            run: {ECHO} ${{model.width}} ${{model.depth}} ${{data.rows}} ${{seed}}
        """)


def _argv(project: Project, run_id: str) -> list[str]:
    text = (project.root / ".mayuri" / "runs" / run_id / "stdout.log").read_text()
    result: list[str] = json.loads(text)
    return result


def test_defaults_compose_through_extends_and_the_file_wins_over_the_choice(project: Project) -> None:
    _setup(project)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    [run] = project.runs()
    # data comes from base.yaml's defaults; the file's own model.depth wins over the choice's.
    assert _argv(project, run["id"]) == ["64", "3", "10", "0"]
    shown = project.show(run["id"])
    assert shown["config"]["choices"] == {"data": "tiny", "model": "small"}
    text = project.mayuri("show", run["id"]).stdout
    assert "config groups" in text and "small" in text


def test_a_choice_on_the_command_line_and_a_value_inside_it(project: Project) -> None:
    _setup(project)
    done = project.mayuri("run", "exp.yaml", "model.width=7", "model=large")
    assert done.returncode == 0, done.stderr
    [run] = project.runs()
    assert _argv(project, run["id"]) == ["7", "3", "10", "0"]
    assert project.show(run["id"])["config"]["choices"]["model"] == "large"


def test_a_sweep_over_choices_labels_each_instance_with_its_choice(project: Project) -> None:
    _setup(project)
    dry = project.mayuri("run", "exp.yaml", "model=small,large", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "train[model=small]" in dry.stdout and "train[model=large]" in dry.stdout
    # The composed params are shown.
    assert '"width":512' in dry.stdout and "choices: data=tiny model=large" in dry.stdout
    done = project.mayuri("run", "exp.yaml", "model=small,large")
    assert done.returncode == 0, done.stderr
    widths = sorted(_argv(project, r["id"])[0] for r in project.runs())
    assert widths == ["512", "64"]


def test_an_unknown_choice_lists_the_choices_and_writes_nothing(project: Project) -> None:
    _setup(project)
    done = project.mayuri("run", "exp.yaml", "model=huge")
    assert done.returncode == 2
    assert "exp.yaml:2:" in done.stderr and "huge" in done.stderr and "large, small" in done.stderr
    assert "Traceback" not in done.stderr
    project.write("exp.yaml", "defaults: {model: medium}\njobs: {a: {run: 'true'}}\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2 and "exp.yaml:1:" in done.stderr and "Choices: large, small" in done.stderr
    assert project.runs() == []


def test_the_configs_folder_is_set_in_mayuri_toml(project: Project) -> None:
    project.write("conf/opt/adam.yaml", "lr: 0.001\n")
    (project.root / "mayuri.toml").write_text('[project]\nconfigs = "conf"\n')
    project.write("exp.yaml", f"defaults: {{opt: adam}}\njobs:\n  a:\n    run: {ECHO} ${{opt.lr}}\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    assert _argv(project, project.runs()[0]["id"]) == ["0.001"]


def test_plus_adds_a_group_the_file_does_not_name(project: Project) -> None:
    project.write("configs/opt/adam.yaml", "lr: 0.001\n")
    project.write("exp.yaml", f"params: {{seed: 0}}\njobs:\n  a:\n    run: {ECHO} ${{seed}}\n")
    done = project.mayuri("run", "exp.yaml", "+opt=adam")
    assert done.returncode == 0, done.stderr
    [run] = project.runs()
    assert run["params"]["opt"] == {"lr": 0.001}
    assert project.show(run["id"])["config"]["choices"] == {"opt": "adam"}
    done = project.mayuri("run", "exp.yaml", "+opt=sgd")
    assert done.returncode == 2 and "Choices: adam" in done.stderr


def test_defaults_in_a_pipeline_file_are_refused(project: Project) -> None:
    project.write("configs/model/small.yaml", "width: 64\n")
    project.write("inner.yaml", "defaults: {model: small}\njobs:\n  a:\n    run: 'true'\n")
    project.write("exp.yaml", "jobs:\n  step:\n    pipeline: inner.yaml\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2 and "inner.yaml:1:" in done.stderr and "outer experiment file" in done.stderr


def test_a_sweep_in_the_file_over_a_group_sweeps_its_choices(project: Project) -> None:
    _setup(project)
    project.write("exp.yaml", f"""\
        defaults: {{model: small}}
        jobs:
          train:
            run: {ECHO} ${{model.width}}
            sweep: {{model: [small, large]}}
        """)
    done = project.mayuri("run", "exp.yaml", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "train[model=small]" in done.stdout and '"width":512' in done.stdout
