"""Two Unix users sharing a group store: artifacts are safe to save and to fetch, files keep group access.

Alice's job is hostile but fair: it plants links in its own run folder. Bob
fetches her artifacts from a notebook. Both have umask 077.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.store.unix_users import as_user, unix_group_users

SAVE = """
import os, sys, mayuri
run = os.environ["MAYURI_RUN_DIR"]
model = os.path.join(run, "model")
os.makedirs(model)
open(os.path.join(model, "w.bin"), "w").write("weights")
mayuri.artifact(model)
mayuri.output("done", 1)
if sys.argv[1] == "plant":
    os.symlink(sys.argv[2], os.path.join(run, "artifacts"))
if sys.argv[1] == "leak":
    os.symlink(sys.argv[2], os.path.join(model, "secret"))
    mayuri.artifact(model, name="leaky")
"""

EXP = """
name: share
params: {mode: none, target: none}
jobs:
  save:
    run: python save.py ${mode} ${target}
"""

FETCH = """
import json, mayuri
from mayuri.errors import MayuriError
run = mayuri.get_run({run!r})
try:
    print(json.dumps(str(run.artifact("model"))))
except MayuriError as exc:
    print(json.dumps({{"refused": str(exc)}}))
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def shared(tmp_path: Path):
    with unix_group_users(2) as (group, (alice, bob)):
        store = tmp_path / "shared-store"
        store.mkdir()
        shutil.chown(store, group=group)
        store.chmod(0o2770)
        root = tmp_path / "proj"
        root.mkdir()
        (root / "mayuri.toml").write_text(f'[store]\npath = "{store}"\n')
        (root / "save.py").write_text(SAVE)
        (root / "exp.yaml").write_text(textwrap.dedent(EXP))
        bob_home = tmp_path / "bob"
        bob_home.mkdir()
        (bob_home / ".bashrc").write_text("bob's own\n")
        shutil.chown(bob_home, user=bob)
        yield Project(root), store, alice, bob, bob_home


def _alice_run(project: Project, store: Path, alice: str, *overrides: str) -> tuple[subprocess.CompletedProcess[str], str]:
    done = as_user(alice, ["run", "exp.yaml", *overrides], cwd=project.root, umask=0o077)
    listed = json.loads(as_user(alice, ["runs", "--json"], cwd=project.root).stdout)
    return done, listed[0]["id"]


def test_fetching_never_writes_through_a_planted_link(shared) -> None:
    project, store, alice, bob, bob_home = shared
    done, run_id = _alice_run(project, store, alice, "mode=plant", f"target={bob_home}")
    assert done.returncode == 0, done.stdout + done.stderr
    before = sorted(os.listdir(bob_home))
    fetched = as_user(bob, ["-c", FETCH.format(run=run_id)], cwd=project.root, umask=0o077)
    assert fetched.returncode == 0, fetched.stderr
    answer = json.loads(fetched.stdout.splitlines()[-1])
    assert "refused" in answer and "not a plain folder" in answer["refused"], answer
    assert sorted(os.listdir(bob_home)) == before and (bob_home / ".bashrc").read_text() == "bob's own\n"


def test_fetched_artifacts_and_run_files_keep_group_access(shared) -> None:
    project, store, alice, bob, _ = shared
    done, run_id = _alice_run(project, store, alice)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = store / "runs" / run_id
    group = grp.getgrgid(store.stat().st_gid).gr_gid
    for name in ("outputs.json", "params.json", "run.json", "stdout.log"):
        assert _mode(folder / name) & 0o060 == 0o060, (name, oct(_mode(folder / name)))
        assert (folder / name).stat().st_gid == group
    fetched = as_user(bob, ["-c", FETCH.format(run=run_id)], cwd=project.root, umask=0o077)
    assert fetched.returncode == 0, fetched.stderr
    path = Path(json.loads(fetched.stdout.splitlines()[-1]))
    assert path == folder / "artifacts" / "model"
    assert (path / "w.bin").read_text() == "weights"
    assert _mode(path / "w.bin") & 0o040, oct(_mode(path / "w.bin"))
    assert _mode(path) & 0o070 == 0o070 and path.stat().st_gid == group


def test_saving_refuses_a_link_to_a_private_file(shared, tmp_path: Path) -> None:
    project, store, alice, bob, bob_home = shared
    secret = tmp_path / "secret"
    secret.write_text("private key")
    secret.chmod(0o600)
    shutil.chown(secret, user=alice)
    done, run_id = _alice_run(project, store, alice, "mode=leak", f"target={secret}")
    assert done.returncode == 1, done.stdout + done.stderr
    stderr = (store / "runs" / run_id / "stderr.log").read_text()
    assert "symbolic link" in stderr and "never follows a link" in " ".join(stderr.split())
    blobs = [p for p in (store / "blobs").rglob("*") if p.is_file()]
    assert all(p.read_bytes() != b"private key" for p in blobs)


def test_blobs_never_widen_permissions_and_fetch_checks_content(project: Project) -> None:
    project.write("save.py", """
        import os, mayuri
        open("private.bin", "w").write("secret")
        os.chmod("private.bin", 0o600)
        mayuri.artifact("private.bin")
        open("model.bin", "w").write("abcdef")
        mayuri.artifact("model.bin")
    """)
    project.write("exp.yaml", "name: modes\njobs:\n  save: {run: python save.py}\n")
    assert project.mayuri("run", "exp.yaml").returncode == 0
    blobs = {p.read_bytes(): p for p in (project.root / ".mayuri" / "blobs").rglob("*") if p.is_file()}
    assert _mode(blobs[b"secret"]) == 0o400 and _mode(blobs[b"abcdef"]) & 0o444 == 0o444
    fetch = "import mayuri; r = mayuri.runs()[0]; print(open(r.artifact('model.bin')).read())"

    def read_back() -> str:
        done = subprocess.run([sys.executable, "-c", fetch], cwd=project.root, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert read_back() == "abcdef"
    # A same-sized file of other content in its place is not taken for the artifact.
    run_id = project.runs()[0]["id"]
    target = project.root / ".mayuri" / "runs" / run_id / "artifacts" / "model.bin"
    target.unlink()
    target.write_text("XXXXXX")
    assert read_back() == "abcdef"
