"""Cached results per experiment and job (runs, hits, size, last use) and what gc would free.

Both come from the gc package's own read-only functions (`list_cache`, the
same as `mayuri cache ls`, and `plan_gc` under the project's `[gc]` policy,
the same plan `mayuri gc --dry-run` shows), read in a thread worker: sizes
need a walk of the run folders. Nothing is deleted from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from mayuri.cache_admin import CacheEntry, list_cache
from mayuri.errors import MayuriError
from mayuri.gc import GcPlan, gc_policy, plan_gc
from mayuri.tui.formatting import format_time
from mayuri.tui.messages import StoreChanged
from mayuri.tui.store_reading import ReadsStore
from mayuri.units import format_size


def plan_summary(plan: GcPlan, limit: int = 5) -> Group:
    """The gc preview: bytes per category, then the first runs it would collect."""
    table = Table.grid(padding=(0, 2))
    for name, items, size in plan.categories():
        table.add_row(name, f"{items:,}", format_size(size))
    title = Text(f"gc under the [gc] policy would free {format_size(plan.bytes)}", style="bold")
    parts: list[Table | Text] = [title, table]
    for run in plan.runs[:limit]:
        parts.append(Text(f"  {run.id[:8]} {run.experiment}/{run.job} {run.status} "
                          f"last used {format_time(run.last_use)} {format_size(run.bytes)}", style="dim"))
    if len(plan.runs) > limit:
        parts.append(Text(f"  … and {len(plan.runs) - limit} more runs", style="dim"))
    if plan.empty:
        parts = [Text("gc under the [gc] policy would free nothing now.", style="bold")]
    return Group(*parts)


class CachesScreen(ReadsStore, Screen[None]):
    """Cache entries, most recently used first, and the gc preview under them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back", id="caches.back", tooltip="Back"),
        Binding("r", "reload", "Reload", id="caches.reload", tooltip="Measure sizes and plan gc again"),
    ]

    @dataclass
    class Loaded(Message):
        entries: list[CacheEntry]
        plan: GcPlan | None
        problem: str | None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("cached results per experiment and job", classes="section-title")
        yield DataTable(id="cache-table", cursor_type="row", zebra_stripes=True)
        yield Static("gc preview", classes="section-title")
        yield Static("measuring …", id="gc-preview")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "caches"
        table = self.query_one("#cache-table", DataTable)
        table.add_columns("experiment", "job", "cached runs", "pinned", "hits", "size", "last used")
        self.load()

    def action_reload(self) -> None:
        self.load()

    def on_store_changed(self, message: StoreChanged) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="caches", exit_on_error=False)
    def load(self) -> None:
        entries = sorted(list_cache(self.store), key=lambda e: -e.last_use)
        try:
            plan: GcPlan | None = plan_gc(self.store, gc_policy(self.settings, {}))
            problem = None
        except MayuriError as exc:  # a bad [gc] table must not hide the cache list
            plan, problem = None, str(exc)
        self.post_message(self.Loaded(entries, plan, problem))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        table = self.query_one("#cache-table", DataTable)
        table.clear()
        for e in message.entries:
            table.add_row(e.experiment, e.job, f"{e.entries:,}", str(e.pinned or ""), f"{e.hits:,}",
                          format_size(e.bytes), format_time(e.last_use), key=f"{e.experiment}/{e.job}")
        preview = self.query_one("#gc-preview", Static)
        if message.plan is not None:
            preview.update(plan_summary(message.plan))
        else:
            preview.update(Text(f"no gc preview: {message.problem}", style="red"))
