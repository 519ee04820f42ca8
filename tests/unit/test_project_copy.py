"""Copy mode's project package: what is shipped, how a node unpacks it, and which copies a node keeps."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import pytest

from mayuri.errors import ConfigError
from mayuri.executors.ray import project_copy
from mayuri.executors.ray.project_copy import Excluded, excluded_globs, node_copy, pack


@pytest.mark.parametrize(("glob", "path", "is_dir", "expected"), [
    (".git", ".git", True, True),
    (".git", "sub/.git", True, True),           # a name without a slash: at any depth
    ("*.ckpt", "runs/a/model.ckpt", False, True),
    ("*.ckpt", "model.ckpt.txt", False, False),
    ("data/raw/**", "data/raw/x/y.bin", False, True),
    ("data/raw/**", "data/rawish/y.bin", False, False),
    ("data/raw/**", "other/data/raw/y.bin", False, False),  # a slash before the end: from the root
    ("/notes.md", "notes.md", False, True),
    ("/notes.md", "docs/notes.md", False, False),
    ("**/cache", "a/b/cache", True, True),
    ("**/cache", "cache", True, True),
    ("logs/", "logs", True, True),
    ("logs/", "logs", False, False),            # a trailing slash: folders only
    ("img?.png", "img1.png", False, True),
    ("img?.png", "img10.png", False, False),
    ("run[0-9]", "run7", True, True),
    ("run[!0-9]", "run7", True, False),
    ("a+b(c).txt", "a+b(c).txt", False, True),  # other characters are themselves
])
def test_exclude_globs_follow_gitignore(glob: str, path: str, is_dir: bool, expected: bool) -> None:
    assert Excluded([glob])(path, is_dir) is expected


def test_a_bang_takes_back_what_an_earlier_glob_left_out_but_never_the_store_or_git(tmp_path: Path) -> None:
    excluded = Excluded(["*.ckpt", "!best.ckpt", "data/**", "!data/keep/**"])
    assert excluded("runs/last.ckpt", False) and not excluded("best.ckpt", False)
    assert excluded("data/raw.bin", False) and not excluded("data/keep/small.csv", False)
    assert not Excluded(["!notes.md"])("notes.md", False)  # nothing to take back
    never = Excluded(excluded_globs(tmp_path, tmp_path / ".mayuri", ["!.git", "!.mayuri", "!.mayuri/**"]))
    assert never(".git", True) and never(".mayuri", True)


def _project(root: Path) -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print('train')\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "src" / "pkg" / "model.py").write_text("X = 1\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "data").mkdir()
    (root / "data" / "small.csv").write_text("a,b\n1,2\n")
    (root / "data" / "raw").mkdir()
    (root / "data" / "raw" / "huge.bin").write_bytes(b"\0" * 1000)
    (root / "model.ckpt").write_bytes(b"weights")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".mayuri" / "runs").mkdir(parents=True)
    (root / ".mayuri" / "mayuri.db").write_bytes(b"store")
    (root / "tools" / "env").mkdir(parents=True)  # a virtualenv below the root, known by its pyvenv.cfg
    (root / "tools" / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / "tools" / "env" / "lib.py").write_text("")
    (root / "src" / "pkg" / "__pycache__").mkdir()
    (root / "src" / "pkg" / "__pycache__" / "model.pyc").write_bytes(b"pyc")
    os.symlink("src/pkg/model.py", root / "model_link.py")
    os.symlink("/datasets/imagenet", root / "imagenet")  # where every node mounts the data
    return root


def _pack(root: Path, extra: list[str] | None = None) -> project_copy.Package:
    return pack(root, Excluded(excluded_globs(root, root / ".mayuri", extra or ["data/raw/**", "*.ckpt"])))


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = f"{path.stat().st_mode & 0o777:o} {path.read_text()}"
    return out


def test_a_node_copy_has_the_files_modes_and_links_of_the_project_and_nothing_excluded(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    package = _pack(root)
    with node_copy(tmp_path / "node", package.digest, memoryview(package.data)) as copy:
        assert copy == tmp_path / "node" / package.digest
        assert _tree(copy) == {
            "data/small.csv": "644 a,b\n1,2\n",
            "empty.txt": "644 ",
            "imagenet": "-> /datasets/imagenet",
            "model_link.py": "-> src/pkg/model.py",
            "run.sh": "755 #!/bin/sh\necho hi\n",
            "src/pkg/model.py": "644 X = 1\n",
            "train.py": "644 print('train')\n",
        }
        assert (copy / "model_link.py").read_text() == "X = 1\n"
        assert (copy / "train.py").stat().st_mtime == int((root / "train.py").stat().st_mtime)
    assert package.files == 5 and package.size == len("print('train')\n#!/bin/sh\necho hi\nX = 1\na,b\n1,2\n")
    # A second task on the node finds the copy: nothing is unpacked again.
    with node_copy(tmp_path / "node", package.digest, b"not unpacked") as copy:
        assert (copy / "train.py").exists()
    assert sorted(p.name for p in (tmp_path / "node").iterdir()) == [package.digest, f"{package.digest}.lock"]


def test_the_digest_names_what_a_job_could_see_not_when_files_were_written(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    first = _pack(root).digest
    os.utime(root / "train.py", (1, 1))
    assert _pack(root).digest == first
    (root / "data" / "raw" / "huge.bin").write_bytes(b"changed, but never shipped")
    assert _pack(root).digest == first
    (root / "train.py").chmod(0o700)
    moved_mode = _pack(root).digest
    assert moved_mode != first
    (root / "train.py").write_text("print('changed')\n")
    assert _pack(root).digest not in (first, moved_mode)
    os.remove(root / "imagenet")
    os.symlink("/elsewhere", root / "imagenet")
    assert len({first, moved_mode, _pack(root).digest}) == 3


def test_a_project_too_large_to_ship_is_refused_naming_its_largest_parts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path / "proj")
    (root / "data" / "big.bin").write_bytes(b"x" * 4000)
    monkeypatch.setattr(project_copy, "MAX_PROJECT", 3000)
    with pytest.raises(ConfigError) as refused:
        _pack(root)
    assert "more than 2.9 KiB" in str(refused.value) and "the largest: data (" in str(refused.value)
    assert "exclude" in refused.value.hint
    _pack(root, ["data/**"])  # left out, it fits


def test_a_package_naming_a_path_outside_its_folder_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ValueError, match="escaped"):
        with node_copy(tmp_path / "node", "d" * 32, zlib.compress(raw.getvalue())):
            pass
    assert not (tmp_path / "escaped.txt").exists()
    assert [p.name for p in (tmp_path / "node").iterdir()] == ["d" * 32 + ".lock"]


UNPACK = """
import sys, time
from pathlib import Path
from mayuri.executors.ray.project_copy import node_copy
import mayuri.executors.ray.project_copy as project_copy
unpack = project_copy._unpack
def slow_unpack(*args):
    time.sleep(0.3)  # both processes are unpacking at once
    unpack(*args)
project_copy._unpack = slow_unpack
with node_copy(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]).read_bytes()) as copy:
    print(sorted(p.name for p in copy.iterdir()))
    if len(sys.argv) > 4:  # hold the copy until told to stop
        print("held", flush=True)
        sys.stdin.read()
"""


def test_tasks_unpacking_the_same_copy_at_once_both_get_it_whole(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    package = _pack(root)
    (tmp_path / "package").write_bytes(package.data)
    argv = [sys.executable, "-c", UNPACK, str(tmp_path / "node"), package.digest, str(tmp_path / "package")]
    both = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0]
    expected = "['data', 'empty.txt', 'imagenet', 'model_link.py', 'run.sh', 'src', 'train.py']\n"
    assert outs == [expected, expected]
    # The loser's half-unpacked folder is gone.
    assert sorted(p.name for p in (tmp_path / "node").iterdir()) == [package.digest, f"{package.digest}.lock"]


def test_a_new_copy_deletes_old_copies_no_task_holds(tmp_path: Path) -> None:
    node = tmp_path / "node"
    root = _project(tmp_path / "proj")
    packages = []
    for version in range(3):
        (root / "train.py").write_text(f"print({version})\n")
        packages.append(_pack(root))
        with node_copy(node, packages[-1].digest, packages[-1].data):
            pass
    old, held, recent = packages
    # A task of another process holds `held`; `old` and `held` were last used two hours ago.
    (tmp_path / "package").write_bytes(held.data)
    holder = subprocess.Popen([sys.executable, "-c", UNPACK, str(node), held.digest, str(tmp_path / "package"), "hold"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        while (line := holder.stdout.readline()) and "held" not in line:
            continue
        assert "held" in line, "the holding process ended without holding its copy"
        stale = time.time() - 2 * project_copy.KEEP_UNUSED
        for package in (old, held):
            os.utime(node / f"{package.digest}.lock", (stale, stale))
        (node / ".leftover.123.456").mkdir()  # a crashed unpacking's folder
        os.utime(node / ".leftover.123.456", (stale, stale))
        (root / "train.py").write_text("print('new')\n")
        new = _pack(root)
        with node_copy(node, new.digest, new.data):
            pass
    finally:
        holder.communicate("", timeout=30)
    kept = sorted(p.name for p in node.iterdir() if not p.name.endswith(".lock"))
    assert kept == sorted([held.digest, recent.digest, new.digest])
    assert not (node / f"{old.digest}.lock").exists()
