"""RELIABILITY.md tests 7 and 8: network filesystems are refused; a group-shared store stays shared.

The mount table is faked (a file standing in for /proc/self/mounts); the
CLI runs for real. Group sharing is checked with a private umask (077), and,
when the tests run as root, with two real unprivileged users in one group.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mayuri.errors import StoreError
from mayuri.store import fsinfo, open_store
from mayuri.store.fsinfo import bsd_mounts, fstype_of
from tests.conftest import Project
from tests.store.store_workers import fake_mounts, integrity, mayuri_with_mounts

EXPERIMENT = """
    name: shared
    params: {x: 1}
    jobs:
      work:
        run: python work.py ${x}
"""

# The job reports the modes of the WAL files while the scheduler has the store open.
WORK = """
    import json, os, sys
    db = os.path.join(os.environ["MAYURI_STORE"], "mayuri.db")
    modes = {s: oct(os.stat(db + s).st_mode & 0o7777) for s in ("", "-wal", "-shm") if os.path.exists(db + s)}
    with open(f"modes-{sys.argv[1]}.json", "w") as out:
        json.dump(modes, out)
"""


# -- test 7: network filesystems ----------------------------------------------


@pytest.mark.parametrize("fstype", ["nfs", "nfs4", "cifs", "fuse.sshfs", "unknown"])
def test_a_store_on_a_network_filesystem_is_refused(project: Project, tmp_path: Path, fstype: str) -> None:
    project.write("work.py", WORK)
    project.write("exp.yaml", EXPERIMENT)
    before = hashlib.sha256(project.db.read_bytes()).hexdigest()
    if fstype == "unknown":
        # A mount table that says nothing about the store's folder.
        mounts = tmp_path / "mounts"
        mounts.write_text("proc /proc proc rw 0 0\n")
    else:
        mounts = fake_mounts(tmp_path, project.root / ".mayuri", fstype)
    for args in (["run", "exp.yaml"], ["runs"]):
        done = mayuri_with_mounts(project.root, mounts, *args)
        assert done.returncode == 2, (args, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        message = done.stderr.strip()
        assert f"network or unknown filesystem ({fstype})" in message
        assert "allow_network_fs = true" in message and "local disk" in message
    assert not (project.root / "modes-1.json").exists()  # nothing ran
    assert hashlib.sha256(project.db.read_bytes()).hexdigest() == before
    assert integrity(project.db) == "ok"


def test_allow_network_fs_uses_a_rollback_journal_and_warns(project: Project, tmp_path: Path) -> None:
    project.write("work.py", WORK)
    project.write("exp.yaml", EXPERIMENT)
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace("allow_network_fs = false", "allow_network_fs = true"))
    mounts = fake_mounts(tmp_path, project.root / ".mayuri", "nfs4")
    done = mayuri_with_mounts(project.root, mounts, "run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    assert "warning: store on a network filesystem (nfs4); using a rollback journal" in done.stderr
    assert json.loads((project.root / "modes-1.json").read_text()).keys() == {""}  # no -wal, no -shm
    listed = mayuri_with_mounts(project.root, mounts, "runs", "--json")
    assert [r["status"] for r in json.loads(listed.stdout)] == ["succeeded"]
    with open_store_on(project.root / ".mayuri", mounts, allow_network_fs=True) as store:
        assert store.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert store.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert integrity(project.db) == "ok"


@contextlib.contextmanager
def open_store_on(root: Path, mounts: Path, **options: Any) -> Iterator[Any]:
    """open_store seeing a fake mount table."""
    saved = fsinfo.MOUNTS_FILE
    fsinfo.MOUNTS_FILE = str(mounts)
    try:
        store = open_store(root, **options)
        try:
            yield store
        finally:
            store.close()
    finally:
        fsinfo.MOUNTS_FILE = saved


@pytest.mark.parametrize("fstype", ["ext4", "tmpfs", "xfs", "btrfs"])
def test_local_filesystems_are_accepted_in_wal_mode(tmp_path: Path, fstype: str) -> None:
    root = tmp_path / "store"
    root.mkdir()
    mounts = fake_mounts(tmp_path, root, fstype)
    assert fstype_of(root, str(mounts)) == fstype
    with open_store_on(root, mounts) as store:
        assert store.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert store.db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert integrity(root / "mayuri.db") == "ok"


def test_a_network_store_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    root = tmp_path / "share" / "store"
    mounts = fake_mounts(tmp_path, tmp_path / "share", "cifs")
    with pytest.raises(StoreError, match=r"\(cifs\)"), open_store_on(root, mounts):
        pass
    assert not (root / "mayuri.db").exists()


def test_the_mount_table_is_read_like_the_kernel_writes_it(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_bytes(
        b"/dev/vda / ext4 rw 0 0\n"
        b"srv:/a /mnt/nfs nfs4 rw 0 0\n"
        b"srv:/b /mnt/with\\040space cifs rw 0 0\n"
        b"tmpfs /mnt/nfs/scratch tmpfs rw 0 0\n"
        b"srv:/c /mnt/donn\xc3\xa9es fuse.sshfs rw 0 0\n"  # UTF-8 bytes, as the kernel writes them
    )
    table = str(mounts)
    assert fstype_of(Path("/mnt/nfs/x/y"), table) == "nfs4"
    assert fstype_of(Path("/mnt/nfsdata"), table) == "ext4"  # a prefix of a name is not a parent
    assert fstype_of(Path("/mnt/nfs/scratch/run"), table) == "tmpfs"  # the deepest mount wins
    assert fstype_of(Path("/mnt/with space/store"), table) == "cifs"
    assert fstype_of(Path("/mnt/données/store"), table) == "fuse.sshfs"
    assert fstype_of(Path("/srv"), str(tmp_path / "missing")) == "unknown"


def test_the_mount_table_of_macos_is_read_from_mount() -> None:
    output = (
        "/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)\n"
        "/dev/disk3s5 on /System/Volumes/Data (apfs, local, journaled, nobrowse)\n"
        "//ada@nas/team on /Volumes/team share (smbfs, nodev, nosuid, mounted by ada)\n"
        "map auto_home on /System/Volumes/Data/home (autofs, automounted, nobrowse)\n"
    )
    assert bsd_mounts(output) == [
        ("/", "apfs"), ("/System/Volumes/Data", "apfs"), ("/Volumes/team share", "smbfs"),
        ("/System/Volumes/Data/home", "autofs"),
    ]


# -- test 8: group-shared store -----------------------------------------------


def _shared_group() -> int:
    """A group other than our primary one when we have (or, as root, may use) one."""
    if os.geteuid() == 0:
        return 4242
    others = [g for g in os.getgroups() if g != os.getegid()]
    return others[0] if others else os.getegid()


def _run_with_umask(project: Project, umask: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mayuri", *args], cwd=project.root, capture_output=True, text=True, check=False,
        env=dict(os.environ, COLUMNS="200"), timeout=120, preexec_fn=lambda: os.umask(umask),
    )


def _walk(root: Path) -> Iterator[Path]:
    yield root
    yield from root.rglob("*")


def test_a_group_shared_store_keeps_group_access_under_a_private_umask(project: Project, tmp_path: Path) -> None:
    group = _shared_group()
    shared = tmp_path / "team"
    shared.mkdir()
    os.chown(shared, -1, group)
    os.chmod(shared, 0o2770)
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace('path = ".mayuri"', f'path = "{shared / "store"}"'))
    project.write("work.py", WORK)
    project.write("exp.yaml", EXPERIMENT)
    done = _run_with_umask(project, 0o077, "run", "exp.yaml")
    assert done.returncode == 0, done.stderr

    store = shared / "store"
    # While the scheduler had the store open, SQLite's -wal and -shm had the database's mode.
    assert json.loads((project.root / "modes-1.json").read_text()) == {"": "0o660", "-wal": "0o660", "-shm": "0o660"}
    # What the store package makes: its folders, the database, blobs and run folders.
    # (The contents of run folders are the scheduler's: see the next test.)
    made = [store, *store.glob("mayuri.db*"), *_walk(store / "blobs"), store / "runs", *(store / "runs").iterdir()]
    assert any(p.parent.parent == store / "blobs" for p in made), "no code file was kept in blobs/"
    assert any(p.parent == store / "runs" for p in made), "no run folder"
    for path in made:
        info = path.lstat()
        assert info.st_gid == group, f"{path} lost the folder's group"
        if path.is_dir():
            assert stat.S_IMODE(info.st_mode) & 0o2070 == 0o2070, f"{path}: {oct(info.st_mode)}"
        elif path.parent.parent == store / "blobs":
            assert stat.S_IMODE(info.st_mode) == 0o444, f"blob {path}: {oct(info.st_mode)}"  # read-only for all
        elif path.name.startswith("mayuri.db"):
            assert stat.S_IMODE(info.st_mode) & 0o660 == 0o660, f"{path}: {oct(info.st_mode)}"
    assert integrity(store / "mayuri.db") == "ok"


# In a group-writable store the scheduler and its jobs create files that the
# group can use, whatever the user's umask (mayuri.store.perms.share_umask).
def test_run_folder_files_are_group_readable_under_a_private_umask(project: Project, tmp_path: Path) -> None:
    shared = tmp_path / "team"
    shared.mkdir()
    os.chmod(shared, 0o2770)
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace('path = ".mayuri"', f'path = "{shared / "store"}"'))
    project.write("work.py", WORK)
    project.write("exp.yaml", EXPERIMENT)
    assert _run_with_umask(project, 0o077, "run", "exp.yaml").returncode == 0
    run_folder = next((shared / "store" / "runs").iterdir())
    for name in ("stdout.log", "stderr.log", "params.json"):
        assert stat.S_IMODE((run_folder / name).stat().st_mode) & 0o060 == 0o060, name
    for folder in (p for p in run_folder.rglob("*") if p.is_dir()):
        assert stat.S_IMODE(folder.stat().st_mode) & 0o2070 == 0o2070, folder


# -- test 8 with two real users (root only) -------------------------------------


def _as_user(uid: int, group: int, umask: int, root: str, job: str, hold: Any, results: Any) -> None:
    # Forked, not spawned: this user may not be able to read the interpreter's
    # files, so everything needed is imported before the fork.
    try:
        os.setgroups([group])
        os.setgid(group)
        os.setuid(uid)
        os.umask(umask)
        from mayuri.store.records import create_run, ensure_experiment

        store = open_store(Path(root))
        experiment = ensure_experiment(store, "shared")
        create_run(store, run_id=f"{job}-{uid}", experiment_id=experiment, job=job, kind="job",
                   config_hash=job, params={}, config={}, upstream={}, reason="new",
                   run_dir=store.runs / job)
        results.put(("ok", uid))
        hold.wait(60)  # keep the connection (and so -wal and -shm) open when asked to
        store.close()
    except BaseException as exc:  # noqa: BLE001
        results.put(("error", f"{uid}: {exc!r}"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as two users")
def test_two_users_of_one_group_share_a_store() -> None:
    import mayuri.store.records  # noqa: F401 - imported before the fork, see _as_user

    group, user_b, user_a = 4242, 4243, 4244
    with tempfile.TemporaryDirectory(dir="/tmp") as base:
        os.chmod(base, 0o755)
        shared = Path(base) / "team"
        shared.mkdir()
        os.chown(shared, 0, group)
        os.chmod(shared, 0o2770)
        ctx = multiprocessing.get_context("fork")
        results: Any = ctx.Queue()
        hold_b, hold_a = ctx.Event(), ctx.Event()
        hold_a.set()
        # B, with umask 077, creates the store and keeps it open ...
        b = ctx.Process(target=_as_user, args=(user_b, group, 0o077, str(shared / "store"), "b", hold_b, results))
        b.start()
        assert results.get(timeout=60) == ("ok", user_b)
        db = shared / "store" / "mayuri.db"
        for suffix in ("", "-wal", "-shm"):
            info = os.stat(str(db) + suffix)
            assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (user_b, group, 0o660), suffix
        # ... while A writes to it.
        a = ctx.Process(target=_as_user, args=(user_a, group, 0o022, str(shared / "store"), "a", hold_a, results))
        a.start()
        assert results.get(timeout=60) == ("ok", user_a)
        hold_b.set()
        for process in (a, b):
            process.join(timeout=60)
            assert process.exitcode == 0
        store = open_store(shared / "store")
        owners = dict(store.db.execute_sql("SELECT job, id FROM run").fetchall())
        store.close()
        assert owners == {"b": f"b-{user_b}", "a": f"a-{user_a}"}
        assert integrity(db) == "ok"
