"""Fixtures of the metrics tests: a store, and runs in it to write points into."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mayuri.store import Store, open_store
from mayuri.store.records import create_run, ensure_experiment, new_run_id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "store")
    yield opened
    opened.close()


def new_run(store: Store) -> str:
    """A run row for points to belong to."""
    run_id = new_run_id()
    create_run(
        store, run_id=run_id, experiment_id=ensure_experiment(store, "exp"), job="job", kind="job",
        config_hash="c", params={}, config={}, upstream={}, reason="test", run_dir=store.runs / run_id,
    )
    return run_id


@pytest.fixture
def make_run() -> Callable[[Store], str]:
    """`make_run(store)` inserts a run and returns its id."""
    return new_run

