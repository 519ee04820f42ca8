"""The hit log: cache hits appended by all-cached runs, folded into the runs' rows by writers.

Real processes append while others fold: no hit may be lost or counted twice,
and readers must see the hits still in the log.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mayuri.store import Store, hit_log, open_store
from mayuri.store.hit_log import append_hits, fold_hits, log_hits, pending_hits
from mayuri.store.queries import get_run
from mayuri.store.records import create_run, ensure_experiment
from tests.store.store_workers import hit_appender, hit_folder

APPENDERS = 4
HITS_EACH = 150


def _runs(store: Store, count: int) -> list[str]:
    experiment_id = ensure_experiment(store, "hits")
    ids = [f"{n:032x}" for n in range(1, count + 1)]
    for run_id in ids:
        create_run(store, run_id=run_id, experiment_id=experiment_id, job="j", kind="job", config_hash="c",
                   params={}, config={}, upstream={}, reason="new", run_dir=store.runs / run_id)
    return ids


def _rows(store: Store) -> dict[str, tuple[int, float | None]]:
    return {r[0]: (r[1], r[2]) for r in store.db.execute_sql("SELECT id, hits, last_used_at FROM run")}


def test_appenders_and_folders_at_once_lose_and_double_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = open_store(root)
    ids = _runs(store, 3)
    store.close()
    ctx = multiprocessing.get_context("spawn")
    barrier, stop, results = ctx.Barrier(APPENDERS + 2), ctx.Event(), ctx.Queue()
    appenders = [ctx.Process(target=hit_appender, args=(str(root), ids, HITS_EACH, barrier, results))
                 for _ in range(APPENDERS)]
    folders = [ctx.Process(target=hit_folder, args=(str(root), barrier, stop, results)) for _ in range(2)]
    for process in appenders + folders:
        process.start()
    reports = [results.get(timeout=120) for _ in appenders]
    stop.set()
    reports += [results.get(timeout=120) for _ in folders]
    for process in appenders + folders:
        process.join(timeout=30)
        assert process.exitcode == 0
    errors = [text for _, status, text in reports if status != "ok"]
    assert errors == [], errors[0]
    folded_meanwhile = sum(moved for _, _, moved in reports[APPENDERS:])

    store = open_store(root)
    with store.write():
        folded_at_end = fold_hits(store)
    total = APPENDERS * HITS_EACH
    assert folded_meanwhile + folded_at_end == total
    assert folded_meanwhile > 0, "the folders never overlapped the appenders"
    rows = _rows(store)
    assert sum(hits for hits, _ in rows.values()) == total
    per_run = [total // len(ids) + (1 if n < total % len(ids) else 0) for n in range(len(ids))]
    assert [rows[run_id][0] for run_id in ids] == per_run
    assert max(last or 0 for _, last in rows.values()) == max(latest for _, _, latest in reports[:APPENDERS])
    assert pending_hits(root) == {} and not [n for n in os.listdir(root) if n.startswith("hits.log")]
    store.close()


def test_an_append_racing_a_fold_goes_to_the_new_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The appender opened the log just before a fold took it: its hit must not go to the folded file."""
    store = open_store(tmp_path / "store")
    run_id, = _runs(store, 1)
    append_hits(store.root, [run_id], 1.0)
    real_flock = hit_log.fcntl.flock
    folded = []

    def fold_first(fd: int, operation: int) -> None:
        if operation == hit_log.fcntl.LOCK_SH and not folded:
            with store.write():
                folded.append(fold_hits(store))
        real_flock(fd, operation)

    monkeypatch.setattr(hit_log.fcntl, "flock", fold_first)
    append_hits(store.root, [run_id], 2.0)
    assert folded == [1]
    assert pending_hits(store.root) == {run_id: (1, 2.0)}
    assert get_run(store, run_id).hits == 2
    store.close()


def test_readers_add_the_hits_still_in_the_log(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    first, second = _runs(store, 2)
    append_hits(store.root, [first, first], 100.0)
    append_hits(store.root, [first], 300.0)
    assert pending_hits(store.root) == {first: (3, 300.0)}
    run = get_run(store, first)
    assert (run.hits, run.last_used_at) == (3, 300.0)
    assert get_run(store, second).hits == 0
    # The rows themselves are untouched until a fold.
    assert _rows(store)[first] == (0, None)
    with store.write():
        assert fold_hits(store) == 3
    assert _rows(store)[first] == (3, 300.0)
    assert get_run(store, first).hits == 3
    store.close()


def test_a_fold_keeps_the_latest_use(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    run_id, = _runs(store, 1)
    store.db.execute_sql("UPDATE run SET last_used_at = 500.0 WHERE id = ?", (run_id,))
    append_hits(store.root, [run_id], 200.0)
    with store.write():
        fold_hits(store)
    assert _rows(store)[run_id] == (1, 500.0)
    store.close()


def test_a_log_left_by_a_fold_that_died_is_folded_next_time(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    run_id, = _runs(store, 1)
    # What a fold leaves when its process dies after renaming the log: the rename, no update.
    (store.root / "hits.log.deadbeef").write_text(f"{run_id} 10.0\n{run_id} 20.0\nnot a line\n{run_id} 3")
    append_hits(store.root, [run_id], 30.0)
    assert pending_hits(store.root) == {run_id: (3, 30.0)}
    with store.write():
        assert fold_hits(store) == 3
    assert _rows(store)[run_id] == (3, 30.0)
    assert not [n for n in os.listdir(store.root) if n.startswith("hits.log")]
    store.close()


def test_a_fold_needs_the_write_transaction(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    with pytest.raises(RuntimeError, match="write transaction"):
        fold_hits(store)
    store.close()


def test_the_appender_folds_a_large_log_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "store")
    run_id, = _runs(store, 1)
    monkeypatch.setattr(hit_log, "FOLD_AT_BYTES", 200)
    for _ in range(3):
        log_hits(store, [run_id], time.time())
    assert _rows(store)[run_id][0] == 0
    log_hits(store, [run_id] * 3, time.time())
    assert _rows(store)[run_id][0] == 6 and pending_hits(store.root) == {}
    store.close()


def test_an_unwritable_store_gives_a_clear_error(tmp_path: Path) -> None:
    from mayuri.errors import StoreError

    with pytest.raises(StoreError, match="cannot record cache hits") as caught:
        append_hits(tmp_path / "missing" / "store", ["a" * 32], 1.0)
    assert "store folder" in caught.value.hint


@given(st.binary(max_size=300))
def test_any_log_content_reads_without_error(data: bytes) -> None:
    counts: dict[str, list[float]] = {}
    hit_log._tally(data, counts)
    assert all(hits >= 1 for hits, _ in counts.values())


@given(st.lists(st.tuples(st.sampled_from(["a" * 32, "b" * 32]), st.floats(0, 2e9)), max_size=30),
       st.binary(max_size=20).filter(lambda tail: b"\n" not in tail))
def test_whole_lines_count_and_a_torn_last_line_does_not(hits: list[tuple[str, float]], tail: bytes) -> None:
    counts: dict[str, list[float]] = {}
    hit_log._tally("".join(f"{r} {w!r}\n" for r, w in hits).encode() + tail, counts)
    expected: dict[str, list[float]] = {}
    for run_id, when in hits:
        entry = expected.setdefault(run_id, [0, when])
        entry[0] += 1
        entry[1] = max(entry[1], when)
    assert counts == expected
