"""Messages that travel across the whole dashboard (screen-specific ones live in their screens)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class StoreChanged(Message):
    """Someone committed to the store since the last look: visible data may be stale."""


@dataclass
class OpenRun(Message):
    """Show one run (from the runs list, a lineage jump or the queue)."""

    run_id: str
