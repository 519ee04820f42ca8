"""The closure snapshot of the warm cache check, on a real store.

After a clean check, the next check of the same run reads one snapshot row
instead of the closure joined with the stat cache. The snapshot must never
vouch for more than the stat cache did: any file whose stat differs sends the
check the slow way, which then names the file; a snapshot taken in another
project folder is not used; a run collected by gc loses its snapshot.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mayuri import filestate
from mayuri.filestate import current_digests, unchanged_except
from mayuri.hashing import ABSENT, hash_bytes, hash_listing
from mayuri.store import Store
from mayuri.store.queries import closure_snapshot
from mayuri.store.records import ClosureRow
from tests.unit.test_filestate import AN_HOUR_NS, CONTENT, _file, _run_with_closure, root, store

__all__ = ["root", "store"]  # fixtures, shared with test_filestate

NAMES = [f"m{i}.py" for i in range(20)]


def _clean_run(store: Store, root: Path) -> str:
    old = time.time_ns() - AN_HOUR_NS
    for name in [*NAMES, "data/a.csv"]:
        _file(root, name, old)
    rows = [ClosureRow("code", n, "file", hash_bytes(CONTENT), len(CONTENT)) for n in NAMES]
    rows += [ClosureRow("input", "absent.csv", "file", ABSENT, 0),
             ClosureRow("input", "data", "listing", hash_listing(root / "data")[0], 1)]
    run_id = _run_with_closure(store, rows)
    current_digests(store, root, [(n, "file") for n in NAMES])  # fills the stat cache
    return run_id


def _no_slow_way(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("the check read the closure although its snapshot matched")

    monkeypatch.setattr(filestate, "closure_stat_rows", refuse)


def test_a_clean_check_leaves_a_snapshot_that_the_next_check_uses(
    store: Store, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _clean_run(store, root)
    assert closure_snapshot(store, run_id) is None
    assert unchanged_except(store, root, run_id) == []
    snapshot = closure_snapshot(store, run_id)
    assert snapshot is not None and snapshot[0] == os.path.join(root, "")
    _no_slow_way(monkeypatch)
    assert unchanged_except(store, root, run_id) == []


def test_the_slow_entries_are_still_checked_with_a_snapshot(
    store: Store, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _clean_run(store, root)
    unchanged_except(store, root, run_id)
    _no_slow_way(monkeypatch)
    (root / "absent.csv").write_text("now it exists")
    (root / "data" / "b.csv").write_text("a new shard")
    assert sorted(unchanged_except(store, root, run_id)) == [("absent.csv", "file"), ("data", "listing")]


@pytest.mark.parametrize("change", ["edit", "touch", "delete", "replace"])
def test_a_changed_file_is_never_vouched_for_by_the_snapshot(store: Store, root: Path, change: str) -> None:
    run_id = _clean_run(store, root)
    unchanged_except(store, root, run_id)
    path = root / "m7.py"
    old = path.stat().st_mtime_ns
    if change == "edit":  # same size, same mtime: only the change time tells
        _file(root, "m7.py", old, content=b"x = 2\n")
    elif change == "touch":
        os.utime(path, ns=(old + 1, old + 1))
    elif change == "delete":
        path.unlink()
    else:
        path.unlink()
        _file(root, "m7.py", old)
    assert unchanged_except(store, root, run_id) == [("m7.py", "file")]


def test_a_snapshot_from_another_project_folder_is_not_used(store: Store, root: Path, tmp_path: Path) -> None:
    run_id = _clean_run(store, root)
    unchanged_except(store, root, run_id)
    moved = tmp_path / "moved"
    root.rename(moved)
    # Nothing in the stat cache vouches for the files at their new place.
    assert sorted(unchanged_except(store, moved, run_id)) == sorted((n, "file") for n in NAMES)


def test_a_collected_run_loses_its_snapshot(store: Store, root: Path) -> None:
    run_id = _clean_run(store, root)
    unchanged_except(store, root, run_id)
    with store.write():
        store.db.execute_sql("UPDATE run SET status = 'collected' WHERE id = ?", (run_id,))
    assert closure_snapshot(store, run_id) is None


@pytest.mark.parametrize("where", ["elsewhere", "in the project folder", "without a folder descriptor"])
def test_the_snapshot_is_used_and_catches_a_change_wherever_the_check_runs(
    store: Store, root: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # Three ways to stat the snapshot's (bytes) paths: relative to the working
    # folder, relative to an open folder, and joined to the project's path.
    if where == "in the project folder":
        monkeypatch.chdir(root)
    elif where == "without a folder descriptor":
        monkeypatch.setattr(filestate, "_open_folder", lambda folder: None)
    old = time.time_ns() - AN_HOUR_NS
    names = [*NAMES, "données/é.py", "a b/ü ñ.py"]
    for name in names:
        _file(root, name, old)
    run_id = _run_with_closure(store, [ClosureRow("code", n, "file", hash_bytes(CONTENT), len(CONTENT)) for n in names])
    current_digests(store, root, [(n, "file") for n in names])
    assert unchanged_except(store, root, run_id) == []
    assert closure_snapshot(store, run_id) is not None
    with monkeypatch.context() as patched:
        _no_slow_way(patched)
        assert unchanged_except(store, root, run_id) == []
    _file(root, "données/é.py", old, content=b"x = 2\n")
    assert unchanged_except(store, root, run_id) == [("données/é.py", "file")]
