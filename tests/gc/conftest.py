"""Fixtures of the gc tests (helpers live in gc_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mayuri.store import open_store
from tests.gc.gc_helpers import Filler


@pytest.fixture
def filler(project: Any) -> Iterator[Filler]:
    """A store in the `project` fixture's project, and a Filler to put runs in it."""
    store = open_store(project.root / ".mayuri")
    yield Filler(store, project.root)
    store.close()
