"""Scheduler tests: skip GPU-only tests without a GPU, and never leave a stray process behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from mayuri.gpu import _nvml_inventory

    here = Path(__file__).parent
    marked = [item for item in items if item.get_closest_marker("gpu") and here in item.path.parents]
    if marked and not _nvml_inventory():
        skip = pytest.mark.skip(reason="needs a real NVIDIA GPU")
        for item in marked:
            item.add_marker(skip)


@pytest.fixture
def sigkill_later() -> Iterator[list[int]]:
    """Pids to SIGKILL at teardown, whatever the test did (no stray sleepers)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
