"""The environment of each run is recorded; `[cache] key_env` makes parts of it count in the fingerprint."""

from __future__ import annotations

import subprocess

from tests.conftest import Project


def git(project: Project, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=project.root, capture_output=True, text=True, check=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(project.root), "PATH": "/usr/bin:/bin"})
    return done.stdout.strip()


def setup_repo(project: Project) -> None:
    project.write("job.py", "print('hi')\n")
    project.write("notes.md", "one\n")
    project.write("exp.yaml", "jobs:\n  a:\n    run: python job.py\n")
    project.write(".gitignore", ".mayuri/\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "first")


def test_git_state_is_recorded_but_not_keyed_by_default(project: Project) -> None:
    setup_repo(project)
    assert project.mayuri("run", "exp.yaml").returncode == 0
    run = project.runs()[0]
    env = project.show(run["id"])["environment"]
    assert env["git"]["commit"] == git(project, "rev-parse", "HEAD")
    assert env["git"]["dirty"] is False
    assert env["python"]["version"].startswith("3.11")
    project.write("notes.md", "two\n")
    git(project, "commit", "-qam", "second")
    assert "cached (run" in project.mayuri("run", "exp.yaml").stderr


def test_key_env_git_makes_a_new_commit_a_change(project: Project) -> None:
    setup_repo(project)
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace("key_env = []", 'key_env = ["git", "python"]'))
    git(project, "commit", "-qam", "config")
    first = git(project, "rev-parse", "HEAD")
    assert project.mayuri("run", "exp.yaml").returncode == 0
    assert "cached (run" in project.mayuri("run", "exp.yaml").stderr
    project.write("notes.md", "two\n")
    git(project, "commit", "-qam", "second")
    second = git(project, "rev-parse", "HEAD")
    done = project.mayuri("run", "exp.yaml", "--dry-run")
    assert f"git {first} -> {second}" in done.stdout
    why = project.show(project.runs()[0]["id"], "--why")
    assert why["env_key"]["git"] == first and why["env_key_now"]["git"] == second
