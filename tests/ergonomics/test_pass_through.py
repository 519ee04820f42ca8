"""`${flags:NAME}` and `${args:NAME}`: many options passed through, one argv element each, also with a shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import Project

ECHO = 'python -c "import json, sys; print(json.dumps(sys.argv[1:]))"'
AWKWARD = {"lr": 0.1, "model": {"width": 3, "act": "gelu"}, "name": "a b; touch PWN #", "q": "it's \"x\"",
           "flag": True, "none": None}
FILES = ["x y", "$(touch PWN)", 3, "--z"]
EXPECTED = ["--lr=0.1", "--model.width=3", "--model.act=gelu", "--name=a b; touch PWN #", "--q=it's \"x\"",
            "--flag=true", "--none=null", "--", "x y", "$(touch PWN)", "3", "--z"]


def _logs(project: Project, job: str) -> list[str]:
    [run] = project.runs("--job", job)
    out: list[str] = json.loads(project.mayuri("logs", run["id"], "--no-stderr").stdout)
    return out


def test_flags_and_args_expand_to_one_argument_each(project: Project) -> None:
    params = json.dumps({"opts": AWKWARD, "files": FILES})
    project.write("exp.yaml", f"""\
        params: {params}
        jobs:
          plain:
            run: {ECHO} ${{flags:opts}} -- ${{args:files}}
          listed:
            run: [python, -c, "import json, sys; print(json.dumps(sys.argv[1:]))", "${{flags:opts}}", "--",
                  "${{args:files}}"]
            # The same command as `plain`'s: without a difference, it would reuse plain's run (the same work).
            env: {{WHICH: listed}}
          shelled:
            shell: true
            run: {ECHO} ${{flags:opts}} -- ${{args:files}} | cat
        """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    for job in ("plain", "listed", "shelled"):
        assert _logs(project, job) == EXPECTED, job
    assert not (project.root / "PWN").exists()
    # An override of one option reaches the command.
    done = project.mayuri("run", "exp.yaml", "opts.lr=0.5", "--only", "plain")
    assert done.returncode == 0, done.stderr
    assert "--lr=0.5" in json.loads(project.mayuri("logs", project.runs("--job", "plain")[0]["id"]).stdout)


def test_wrong_kinds_and_partial_tokens_are_errors(project: Project) -> None:
    project.write("exp.yaml", f"params: {{opts: [1]}}\njobs:\n  a:\n    run: {ECHO} ${{flags:opts}}\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2 and "needs a mapping" in done.stderr and "exp.yaml:4" in done.stderr
    project.write("exp.yaml", f"params: {{opts: {{a: 1}}}}\njobs:\n  a:\n    run: {ECHO} ${{args:opts}}\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2 and "needs a list" in done.stderr
    project.write("exp.yaml", f"params: {{opts: [1]}}\njobs:\n  a:\n    run: {ECHO} --x=${{args:opts}}\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2 and "whole arguments" in done.stderr
    assert project.runs() == []


def test_shell_true_runs_a_leading_python_with_mayuris_interpreter(project: Project) -> None:
    project.write("exp.yaml", """\
        jobs:
          a:
            shell: true
            run: python -c "import sys; print(sys.executable)" | cat
        """)
    # No python on PATH at all: only Mayuri's own interpreter can run it.
    done = project.mayuri("run", "exp.yaml", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    [run] = project.runs()
    printed = project.mayuri("logs", run["id"], "--no-stderr").stdout.strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()
    # The interpreter's path is not part of the config (moving a venv changes nothing).
    assert project.show(run["id"])["config"]["command"].startswith("python -c")
