"""A virtual table of runs: it draws only the visible lines and asks for pages it lacks.

A DataTable measures every cell of every row, which takes seconds at 100,000
runs; this widget knows only the row count and the pages it was given, and
posts `PageWanted` for a page it needs. It never reads the store itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from mayuri.experiment.interpolate import instance_label
from mayuri.store.browse_queries import RunListRow
from mayuri.tui.formatting import (
    format_gpus,
    format_number,
    format_params,
    format_time,
    group_status,
    status_style,
)
from mayuri.units import format_duration

PAGE_SIZE = 100


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    drop_order: int
    """Columns with a higher number are dropped first when the terminal is narrow."""


COLUMNS = (
    Column("id", "id", 8, 0),
    Column("experiment", "experiment", 12, 5),
    Column("job", "job", 12, 0),
    Column("status", "status", 9, 0),
    Column("params", "params", 0, 0),
    Column("metric", "metric", 9, 4),
    Column("gpu", "gpu", 5, 7),
    Column("duration", "time", 7, 3),
    Column("user", "user", 8, 8),
    Column("started", "started", 11, 6),
)
_PARAMS_MIN = 12


@lru_cache(maxsize=16)
def fit_columns(width: int) -> list[tuple[Column, int]]:
    """The columns that fit in `width` cells, with the params column taking what is left."""
    shown = list(COLUMNS)
    while True:
        fixed = sum(c.width + 1 for c in shown if c.key != "params") + 2
        if width - fixed >= _PARAMS_MIN or max(c.drop_order for c in shown) == 0:
            break
        shown.remove(max(shown, key=lambda c: c.drop_order))
    rest = max(_PARAMS_MIN, width - fixed)
    return [(c, rest if c.key == "params" else c.width) for c in shown]


@lru_cache(maxsize=64)
def _status_style(status: str) -> Style:
    return Style.parse(status_style(status) or "none")


class RunTable(ScrollView, can_focus=True):
    """Runs in the order of the current query, one line each, with a cursor and a selection."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"run-table--header", "run-table--cursor", "run-table--selected"}
    DEFAULT_CSS = """
    RunTable { height: 1fr; }
    RunTable > .run-table--header { text-style: bold; background: $panel; }
    RunTable > .run-table--cursor { background: $accent 40%; }
    RunTable:focus > .run-table--cursor { background: $accent; color: $text; }
    RunTable > .run-table--selected { text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False, id="runs.up", tooltip="Previous run"),
        Binding("down", "cursor(1)", "Down", show=False, id="runs.down", tooltip="Next run"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="runs.page_up",
                tooltip="A screenful up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="runs.page_down",
                tooltip="A screenful down"),
        Binding("home,ctrl+home", "jump(0)", "First", show=False, id="runs.first",
                tooltip="The first run"),
        Binding("end,ctrl+end", "jump(-1)", "Last", show=False, id="runs.last",
                tooltip="The last run"),
        Binding("enter", "open", "Open", id="runs.open", tooltip="Open the run under the cursor"),
        Binding("space", "toggle_select", "Select", id="runs.select",
                tooltip="Mark the run for comparison"),
        # Off the footer, which is full at 80 columns; the docs and the key panel name it.
        Binding("t", "toggle_shards", "Shards", show=False, id="runs.shards",
                tooltip="List the shards of the group under the cursor, or fold them again"),
    ]

    @dataclass
    class PageWanted(Message):
        """The table needs rows of `page` (of PAGE_SIZE rows) for the current generation."""

        page: int
        generation: int

    @dataclass
    class Opened(Message):
        run_id: str

    @dataclass
    class ShardsToggled(Message):
        """List the shards of this group one by one, or fold them into one line again."""

        group: str

    @dataclass
    class SortClicked(Message):
        column: str

    cursor: reactive[int] = reactive(0)
    """Index of the highlighted run in the current order."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.total = 0
        self.generation = 0
        self.sort = ("started", True)
        self.highlight_params: tuple[str, ...] = ()
        self.selected: set[str] = set()
        # Shard groups whose shards are listed one by one (the query's `expanded`).
        self.expanded: frozenset[str] = frozenset()
        self._pages: dict[int, list[RunListRow]] = {}
        self._asked: set[int] = set()
        self._styles: dict[str, Style] = {}

    def notify_style_update(self) -> None:
        # Theme or CSS changed: the cached component styles are stale.
        self._styles.clear()
        super().notify_style_update()

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(name)
        return style

    # Data in -----------------------------------------------------------------

    def reset(self, total: int, generation: int) -> None:
        """A new query: forget every page and go to the top."""
        self.generation = generation
        self._pages.clear()
        self._asked.clear()
        self.total = total
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self._resize()

    def set_total(self, total: int) -> None:
        """The same query, refreshed: the cached pages stay on screen until new ones arrive."""
        self.total = total
        self._asked.clear()
        self.cursor = min(self.cursor, max(0, total - 1))
        self._resize()

    def set_page(self, page: int, rows: list[RunListRow], generation: int) -> None:
        if generation != self.generation:
            return
        self._pages[page] = rows
        self.refresh()

    def visible_pages(self) -> list[int]:
        """Pages of rows now on screen (what a live refresh reloads)."""
        first = int(self.scroll_y)
        last = first + max(1, self.size.height)
        return list(range(first // PAGE_SIZE, last // PAGE_SIZE + 1))

    def row_at(self, index: int) -> RunListRow | None:
        rows = self._pages.get(index // PAGE_SIZE)
        if rows is None or index % PAGE_SIZE >= len(rows):
            return None
        return rows[index % PAGE_SIZE]

    @property
    def current(self) -> RunListRow | None:
        return self.row_at(self.cursor) if self.total else None

    def _resize(self) -> None:
        size = Size(self.size.width, self.total + 1)
        # A new virtual size relays the screen out; skip it when nothing moved.
        if size != self.virtual_size:
            self.virtual_size = size
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._resize()

    # Drawing -----------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        # The scrollbar takes a column when the rows overflow.
        width = self.scrollable_content_region.width
        columns = fit_columns(width)
        if y == 0:
            return self._header(columns, width)
        index = int(self.scroll_y) + y - 1
        if index >= self.total:
            return Strip.blank(width, self.rich_style)
        row = self.row_at(index)
        if row is None:
            page = index // PAGE_SIZE
            if page not in self._asked:
                self._asked.add(page)
                self.post_message(self.PageWanted(page, self.generation))
            if index // PAGE_SIZE in self._pages:
                return Strip.blank(width, self.rich_style)
            return Strip([Segment(set_cell_size("  …", width), self.rich_style)], width)
        return self._line(row, index, columns, width)

    def _header(self, columns: list[tuple[Column, int]], width: int) -> Strip:
        style = self._style("run-table--header")
        sort_key, descending = self.sort
        cells = []
        for column, size in columns:
            mark = (" ▼" if descending else " ▲") if column.key == sort_key else ""
            cells.append(set_cell_size(column.label + mark, size))
        return Strip([Segment(set_cell_size("  " + " ".join(cells), width), style)], width)

    def _line(self, row: RunListRow, index: int, columns: list[tuple[Column, int]], width: int) -> Strip:
        base = self.rich_style
        if index == self.cursor:
            base = base + self._style("run-table--cursor")
        mark = "● " if row.id in self.selected else "  "
        segments = [Segment(mark, base + self._style("run-table--selected"))]
        cells = self._cells(row)
        for column, size in columns:
            style = base + _status_style(cells["status"]) if column.key == "status" else base
            segments.append(Segment(set_cell_size(cells[column.key], size), style))
            segments.append(Segment(" ", base))
        used = sum(cell_len(s.text) for s in segments)
        if used < width:
            segments.append(Segment(" " * (width - used), base))
        return Strip(segments).crop(0, width)

    def _cells(self, row: RunListRow) -> dict[str, str]:
        job = row.label if not row.shard else \
            instance_label(row.job, {k: v for k, v in row.labels.items() if k != "shard"})
        status, params = row.status, format_params(row.params, self.highlight_params)
        if row.progress is not None and row.group not in self.expanded:
            # A collapsed shard group: one line, its progress where the params go (t lists its shards).
            job, status, params = f"▸ {job}[{row.progress.count} shards]", group_status(row.progress), \
                row.progress.summary()
        elif row.progress is not None:
            job, params = f"▾ {job}[{row.shard}]", row.progress.summary()
        elif row.shard:
            # A shard `eval[3/8]` (indented under its group's line), or `eval[8 shards]`, their reduction.
            job = ("  " if row.group else "") + f"{job}[{row.shard}]"
        return {
            "id": row.id[:8],
            "experiment": row.experiment,
            "job": job,
            "status": status,
            "params": params,
            "metric": format_number(row.metric),
            "gpu": format_gpus(row.gpus),
            "duration": format_duration(row.duration),
            "user": row.user,
            "started": format_time(row.started_at or row.created_at),
        }

    # Moving ------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        # Keep the cursor line in view; the header takes the first line.
        top = int(self.scroll_y)
        visible = max(1, self.size.height - 1)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        if self.total:
            self.cursor = max(0, min(self.total - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.size.height - 2))

    def action_jump(self, where: int) -> None:
        if self.total:
            self.cursor = self.total - 1 if where < 0 else 0

    def action_open(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.Opened(row.id))

    def action_toggle_shards(self) -> None:
        row = self.current
        if row is not None and row.group:
            self.post_message(self.ShardsToggled(row.group))

    def action_toggle_select(self) -> None:
        row = self.current
        if row is None:
            return
        self.selected.symmetric_difference_update({row.id})
        self.action_cursor(1)
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            offset = 2
            for column, size in fit_columns(self.scrollable_content_region.width):
                if offset <= event.x < offset + size + 1:
                    self.post_message(self.SortClicked(column.key))
                    return
                offset += size + 1
            return
        index = int(self.scroll_y) + event.y - 1
        if 0 <= index < self.total:
            if index == self.cursor and event.chain > 1:
                self.action_open()
            self.cursor = index
