"""When a sharded job's reduction may run: asked every scheduling turn, it must not rescan every shard."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

from mayuri.scheduler.reduction import shards_state


class CountedSlots(Mapping[str, Any]):
    """The plan's slots by key, counting how many are looked at."""

    def __init__(self, states: list[str]) -> None:
        self.slots = {f"ev[{i}]": SimpleNamespace(state=s, reason=None, instance=None) for i, s in enumerate(states)}
        self.looked = 0

    def __getitem__(self, key: str) -> Any:
        self.looked += 1
        return self.slots[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.slots)

    def __len__(self) -> int:
        return len(self.slots)


def test_while_the_last_shards_run_one_look_tells_the_reduction_to_wait() -> None:
    # Shards start in order: at every turn but the last few, the early shards are settled and the last are not.
    states = ["succeeded"] * 9_000 + ["running"] * 4 + ["pending"] * 996
    slots = CountedSlots(states)
    assert shards_state(list(slots.slots), slots, dry_run=False) == (False, None)
    assert slots.looked == 1


def test_every_shard_settled_ok_lets_the_reduction_run() -> None:
    slots = CountedSlots(["succeeded", "cached", "succeeded"])
    assert shards_state(list(slots.slots), slots, dry_run=False) == (True, None)


def test_an_unsettled_first_shard_still_holds_the_reduction_back() -> None:
    slots = CountedSlots(["running", "succeeded", "succeeded"])
    assert shards_state(list(slots.slots), slots, dry_run=False) == (False, None)
