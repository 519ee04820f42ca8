"""The stat cache and its racy-timestamp rule, on a real store.

A stat-cache entry is trusted only when the file's stat still matches and the
file was last modified at least RACY_WINDOW_NS before it was hashed; a file
modified closer to its hashing could change again within the same timestamp
tick, unseen (git's "racily clean" rule). These tests plant entries with a
deliberately wrong digest: getting the planted digest back proves the cache
was trusted (nothing hashed), getting the real one proves the file was hashed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mayuri import filestate
from mayuri.filestate import RACY_WINDOW_NS, current_digests, unchanged_except
from mayuri.hashing import ABSENT, hash_bytes, hash_listing
from mayuri.store import Store, open_store
from mayuri.store.queries import stat_cache_rows
from mayuri.store.records import (
    ClosureRow,
    create_run,
    ensure_experiment,
    finish_run,
    save_stat_cache,
)

PLANTED = "f" * 128
CONTENT = b"x = 1\n"
AN_HOUR_NS = 3600 * 10**9


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "store")
    yield opened
    opened.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def _file(root: Path, name: str, mtime_ns: int, content: bytes = CONTENT) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def _plant(store: Store, path: Path, hashed_at_ns: int, digest: str = PLANTED) -> None:
    st = os.stat(path)
    save_stat_cache(store, [(str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                             digest, hashed_at_ns)])


def _digest(store: Store, root: Path, name: str) -> str:
    return current_digests(store, root, [(name, "file")])[(name, "file")][0]


def test_entry_hashed_well_after_its_mtime_is_trusted(store: Store, root: Path) -> None:
    mtime = time.time_ns() - AN_HOUR_NS
    path = _file(root, "a.py", mtime)
    _plant(store, path, hashed_at_ns=mtime + RACY_WINDOW_NS + 1)
    assert _digest(store, root, "a.py") == PLANTED


def test_entry_exactly_one_window_after_its_mtime_is_trusted(store: Store, root: Path) -> None:
    mtime = time.time_ns() - AN_HOUR_NS
    path = _file(root, "a.py", mtime)
    _plant(store, path, hashed_at_ns=mtime + RACY_WINDOW_NS)
    assert _digest(store, root, "a.py") == PLANTED


def test_racily_clean_entry_is_hashed_again_and_replaced(store: Store, root: Path) -> None:
    mtime = time.time_ns() - AN_HOUR_NS
    path = _file(root, "a.py", mtime)
    _plant(store, path, hashed_at_ns=mtime + RACY_WINDOW_NS - 1)
    assert _digest(store, root, "a.py") == hash_bytes(CONTENT)
    entry = stat_cache_rows(store, [str(path)])[str(path)]
    assert entry[5] == hash_bytes(CONTENT)
    # Hashed now, an hour after the mtime: from here on the entry is trusted.
    assert entry[6] >= mtime + RACY_WINDOW_NS


def test_entry_whose_stat_differs_is_hashed_again(store: Store, root: Path) -> None:
    mtime = time.time_ns() - AN_HOUR_NS
    path = _file(root, "a.py", mtime)
    _plant(store, path, hashed_at_ns=time.time_ns())
    _file(root, "a.py", mtime, content=b"x = 22\n")  # same mtime, new size and ctime
    assert _digest(store, root, "a.py") == hash_bytes(b"x = 22\n")


def test_a_just_written_file_stays_untrusted_until_the_window_passes(store: Store, root: Path) -> None:
    path = _file(root, "fresh.py", time.time_ns())
    first = _digest(store, root, "fresh.py")
    hashed_at = stat_cache_rows(store, [str(path)])[str(path)][6]
    assert first == hash_bytes(CONTENT)
    # Still racy: the next look hashes it again (and records a later hashing time).
    time.sleep(0.01)
    assert _digest(store, root, "fresh.py") == first
    assert stat_cache_rows(store, [str(path)])[str(path)][6] > hashed_at


def test_missing_and_non_regular_paths_are_absent(store: Store, root: Path) -> None:
    (root / "folder").mkdir()
    found = current_digests(store, root, [("gone.py", "file"), ("folder", "file")])
    assert found == {("gone.py", "file"): (ABSENT, 0), ("folder", "file"): (ABSENT, 0)}


def _run_with_closure(store: Store, rows: list[ClosureRow]) -> str:
    experiment = ensure_experiment(store, "exp")
    run_id = "ab" * 16
    create_run(store, run_id=run_id, experiment_id=experiment, job="job", kind="job", config_hash="c",
               params={}, config={}, upstream={}, reason="new", run_dir=Path("unused"))
    finish_run(store, run_id, status="succeeded", exit_code=0, fingerprint="fp", closure=rows)
    return run_id


@pytest.mark.parametrize("relative_stats", [True, False], ids=["dir_fd", "absolute"])
def test_fast_path_vouches_only_for_trusted_unchanged_entries(
    store: Store, root: Path, relative_stats: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not relative_stats:  # as on a platform without dir_fd
        monkeypatch.setattr(filestate, "_open_folder", lambda root: None)
    old = time.time_ns() - AN_HOUR_NS
    digest = hash_bytes(CONTENT)
    for name in ("trusted.py", "racy.py", "edited.py", "touched.py", "pkg/listed.csv"):
        _file(root, name, old)
    rows = [ClosureRow("code", name, "file", digest, len(CONTENT))
            for name in ("trusted.py", "racy.py", "edited.py", "touched.py", "uncached.py")]
    rows += [
        ClosureRow("input", "never.csv", "file", ABSENT, 0),
        ClosureRow("listing", "pkg", "listing", hash_listing(root / "pkg")[0], 1),
    ]
    run_id = _run_with_closure(store, rows)
    _file(root, "uncached.py", old)
    for name in ("trusted.py", "edited.py", "touched.py"):
        _plant(store, root / name, hashed_at_ns=old + RACY_WINDOW_NS, digest=digest)
    _plant(store, root / "racy.py", hashed_at_ns=old + RACY_WINDOW_NS - 1, digest=digest)
    _file(root, "edited.py", old, content=b"x = 2\n")
    os.utime(root / "touched.py", ns=(old + 1, old + 1))

    assert sorted(unchanged_except(store, root, run_id)) == [
        ("edited.py", "file"), ("racy.py", "file"), ("touched.py", "file"), ("uncached.py", "file"),
    ]

    (root / "never.csv").write_text("now it exists")
    (root / "pkg" / "new.csv").write_text("a new shard")
    (root / "trusted.py").unlink()
    assert ("never.csv", "file") in unchanged_except(store, root, run_id)
    assert ("pkg", "listing") in unchanged_except(store, root, run_id)
    assert ("trusted.py", "file") in unchanged_except(store, root, run_id)


def test_fast_path_finds_nothing_to_hash_in_an_unchanged_tree(store: Store, root: Path) -> None:
    old = time.time_ns() - AN_HOUR_NS
    names = [f"m{i}.py" for i in range(50)]
    for name in names:
        _file(root, name, old)
    run_id = _run_with_closure(
        store, [ClosureRow("code", n, "file", hash_bytes(CONTENT), len(CONTENT)) for n in names]
    )
    current_digests(store, root, [(n, "file") for n in names])  # fills the stat cache
    assert unchanged_except(store, root, run_id) == []


def test_stat_cache_rows_for_more_paths_than_one_statement_takes(store: Store) -> None:
    # 2,000 paths: three statements of at most 900 parameters each.
    rows = [(f"/p/{i}", 1, i, i, i, i, f"d{i}", i) for i in range(2000)]
    save_stat_cache(store, rows)
    asked = [row[0] for row in rows] + ["/p/missing"]
    found = stat_cache_rows(store, asked)
    assert found == {row[0]: row[1:] for row in rows}
    assert list(store.select_in("SELECT path FROM stat_cache WHERE path IN ({marks})", [], size=900)) == []
