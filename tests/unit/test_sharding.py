"""Shard arithmetic (`shard_of`, files by hash), reductions, and the retry delay: pure functions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mayuri.experiment.spec import Reduction, RetryPolicy
from mayuri.reduce import ReduceError, reduce_shards, reduce_values
from mayuri.scheduler.retry import decide
from mayuri.sharding import assign_files, part_of, shard_for_path, shard_of

SMALL = settings(max_examples=60, deadline=None)


@SMALL
@given(st.lists(st.integers(), max_size=200), st.integers(min_value=1, max_value=40))
def test_every_item_is_in_exactly_one_shard_in_order(items: list[int], count: int) -> None:
    parts = [list(part_of(items, i, count)) for i in range(count)]
    # Contiguous and in order: the parts put back together are the sequence itself.
    assert [x for part in parts for x in part] == items


@SMALL
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=64))
def test_shard_sizes_are_within_one(length: int, count: int) -> None:
    sizes = [len(part_of(range(length), i, count)) for i in range(count)]
    assert sum(sizes) == length and max(sizes) - min(sizes) <= 1


@SMALL
@given(st.lists(st.text(max_size=5), max_size=50), st.integers(min_value=1, max_value=10), st.data())
def test_shard_of_is_the_same_for_the_same_inputs(items: list[str], count: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=count - 1))
    assert list(part_of(items, index, count)) == list(part_of(list(items), index, count))


def test_shard_of_reads_the_shard_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAYURI_SHARD", "2")
    monkeypatch.setenv("MAYURI_SHARDS", "4")
    assert list(shard_of(range(10))) == [6, 7]
    monkeypatch.delenv("MAYURI_SHARD")
    monkeypatch.delenv("MAYURI_SHARDS")
    assert list(shard_of(range(3))) == [0, 1, 2]  # not sharded: the one shard of one


def test_bad_shard_index_is_refused() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        part_of([1, 2], 3, 3)


@SMALL
@given(st.sets(st.text(alphabet="abcdefgh/._", min_size=1, max_size=12), max_size=60),
       st.text(alphabet="xyz", min_size=1, max_size=8), st.integers(min_value=1, max_value=12))
def test_adding_a_file_changes_only_its_own_shard(paths: set[str], extra: str, count: int) -> None:
    paths.discard(extra)
    before = assign_files(sorted(paths), count)
    after = assign_files(sorted(paths | {extra}), count)
    changed = [i for i in range(count) if before[i] != after[i]]
    assert changed == [shard_for_path(extra, count)]
    assert sorted(p for part in after for p in part) == sorted(paths | {extra})


def test_file_shards_are_stable_across_processes() -> None:
    # A fixed value: the hash must not depend on PYTHONHASHSEED or the platform.
    assert [shard_for_path(f"data/{i}.jsonl", 8) for i in range(6)] == \
        [shard_for_path(f"data/{i}.jsonl", 8) for i in range(6)]
    assert shard_for_path("data/0.jsonl", 8) == int.from_bytes(
        __import__("hashlib").sha256(b"data/0.jsonl").digest()[:8], "big") % 8


def test_each_reduction_kind() -> None:
    values = [(0, 1), (1, 4), (2, 2)]
    assert reduce_values(Reduction("x", "sum"), values) == 7
    assert reduce_values(Reduction("x", "mean"), values) == pytest.approx(7 / 3)
    assert reduce_values(Reduction("x", "min"), values) == 1
    assert reduce_values(Reduction("x", "max"), values) == 4
    assert reduce_values(Reduction("x", "count"), values) == 3
    assert reduce_values(Reduction("x", "concat"), [(0, [1]), (1, 2), (2, [3, 4])]) == [1, 2, 3, 4]
    weighted = reduce_values(Reduction("x", "weighted_mean", weight="n"), [(0, 0.5), (1, 1.0)], [(0, 1), (1, 3)])
    assert weighted == pytest.approx((0.5 * 1 + 1.0 * 3) / 4)


def test_reductions_say_which_shard_is_wrong() -> None:
    with pytest.raises(ReduceError, match="shard 1: 'x' is 'oops', not a number"):
        reduce_values(Reduction("x", "mean"), [(0, 1), (1, "oops")])
    with pytest.raises(ReduceError, match="1 of 2 shards did not record output or metric 'x': 1"):
        reduce_shards([Reduction("x", "sum")], [{"x": 1}, {}], [{}, {}])
    # A metric's last value stands in for a missing output.
    assert reduce_shards([Reduction("x", "sum")], [{"x": 1}, {}], [{}, {"x": 2.5}]) == {"x": 3.5}
    assert json.dumps(reduce_shards([Reduction("n", "sum")], [{"n": 2}, {"n": 3}], [{}, {}])) == '{"n": 5}'


def test_retry_failed_waits_its_delay() -> None:
    first = decide(RetryPolicy(failed=2, delay=10.0), "exit", ["exit"], {}, [])
    assert first.retry and first.delay == 10.0 and "in 10s" in first.reason
    assert decide(RetryPolicy(failed=2), "exit", ["exit"], {}, []).delay == 0.0
    assert not decide(RetryPolicy(failed=1, delay=1.0), "exit", ["exit", "exit"], {}, []).retry
