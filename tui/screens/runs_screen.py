"""The first screen: every run of the store, filtered, sorted, grouped, live.

Reads through `mayuri.store.browse_queries` in thread workers, one page of
rows at a time, so that it opens as quickly on 100,000 runs as on ten. A
store change reloads the count and the visible pages in place (no flicker).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import get_current_worker

from mayuri.store.browse_queries import (
    SORTABLE,
    ExperimentGroup,
    QueryStopped,
    RunListRow,
    RunQuery,
    count_runs,
    experiment_groups,
    metric_key_names,
    page_runs,
)
from mayuri.tui.filter_text import FilterError, parse_filter
from mayuri.tui.formatting import format_time, main_metric
from mayuri.tui.messages import OpenRun, StoreChanged
from mayuri.tui.run_actions import RunActions
from mayuri.tui.store_reading import ReadsStore
from mayuri.tui.widgets.runs.run_table import PAGE_SIZE, RunTable


class RunsScreen(ReadsStore, RunActions, Screen[None]):
    """Runs newest first; `/` filters, `s` sorts, `g` groups by experiment, `t` unfolds shards, enter opens."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", id="runs.filter",
                tooltip="Type a filter: status:failed lr>1e-3 user:ana"),
        Binding("escape", "leave_filter", "Table", show=False, id="runs.table",
                tooltip="Back to the table"),
        Binding("s", "sort_next", "Sort", id="runs.sort", tooltip="Sort by the next column"),
        Binding("o", "sort_reverse", "Order", id="runs.order", tooltip="Reverse the order"),
        Binding("g", "toggle_groups", "Group", id="runs.group", tooltip="Group runs by experiment"),
        Binding("c", "compare", "Compare", id="runs.compare",
                tooltip="Compare the marked runs (space marks)"),
        Binding("x", "cancel_run", "Cancel", id="runs.cancel", tooltip="Cancel the queued or running run"),
        Binding("R", "rerun", "Rerun", id="runs.rerun", tooltip="Run this job again with --force"),
    ]

    run_query: reactive[RunQuery] = reactive(RunQuery, init=False)
    """What the table shows; changing it reloads from the first row."""
    grouped: reactive[bool] = reactive(False)
    """Whether the table shows experiments instead of runs."""

    @dataclass
    class Loaded(Message):
        """Rows of the runs list arrived from a worker."""

        query: RunQuery
        generation: int
        total: int | None
        pages: dict[int, list[RunListRow]]
        fresh: bool

    @dataclass
    class GroupsLoaded(Message):
        groups: list[ExperimentGroup]

    def __init__(self) -> None:
        super().__init__()
        self._generation = 0
        self._debounce: Timer | None = None
        self.loaded_generation = -1
        """Generation of the last query whose first page is on screen (the tests wait on it)."""
        self.counted = False
        """Whether the table's total is the exact count (else only the first page is known)."""
        self._keep_group: str | None = None
        """The shard group the cursor goes back to when the next query arrives (unfolded or folded)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: status:failed lr>1e-3 user:ana exp:NAME metric:loss "
                    "sort:-duration   (/ to type, enter to apply)", id="filter")
        yield Static("", id="summary")
        yield RunTable(id="runs")
        yield DataTable(id="groups", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#groups", DataTable).display = False
        self.query_one(RunTable).focus()
        self.watch_run_query(self.run_query)

    # Loading -----------------------------------------------------------------

    def watch_run_query(self, query: RunQuery) -> None:
        self._generation += 1
        table = self.query_one(RunTable)
        table.sort = (query.sort, query.descending)
        table.highlight_params = tuple(c.key for c in query.params)
        self.load_first(query, self._generation)

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def load_first(self, query: RunQuery, generation: int) -> None:
        # A newer query cancels this worker; its SQL then stops too.
        stop = get_current_worker().cancelled_event.is_set
        if query.metric is None:
            query = replace(query, metric=main_metric(metric_key_names(self.store)))
        try:
            # The first page goes out before the count: a count over a param
            # filter scans every run, the page stops at its hundredth match.
            rows = page_runs(self.store, query, 0, PAGE_SIZE, stop)
            exact = len(rows) if len(rows) < PAGE_SIZE else None
            self.post_message(self.Loaded(query, generation, exact, {0: rows}, fresh=True))
            if exact is None:
                total = count_runs(self.store, query, stop)
                self.post_message(self.Loaded(query, generation, total, {}, fresh=False))
        except QueryStopped:
            return

    @work(thread=True, group="pages", exit_on_error=False)
    def load_page(self, query: RunQuery, generation: int, page: int) -> None:
        rows = page_runs(self.store, query, page * PAGE_SIZE, PAGE_SIZE)
        self.post_message(self.Loaded(query, generation, None, {page: rows}, fresh=False))

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def reload_visible(self, query: RunQuery, generation: int, pages: list[int]) -> None:
        stop = get_current_worker().cancelled_event.is_set
        try:
            total = count_runs(self.store, query, stop)
            loaded = {p: page_runs(self.store, query, p * PAGE_SIZE, PAGE_SIZE, stop) for p in pages}
        except QueryStopped:
            return
        self.post_message(self.Loaded(query, generation, total, loaded, fresh=False))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.generation != self._generation:
            return
        table = self.query_one(RunTable)
        if message.fresh:
            # The same query's first page again (a store change while it was on its way, `refresh_data`):
            # the cursor stays on the line it was on.
            kept, at = (table.current, table.cursor) if message.generation == self.loaded_generation else (None, 0)
            # The worker may have filled in the metric column; keep it without reloading.
            self.set_reactive(RunsScreen.run_query, message.query)
            # Until the count arrives the table knows only its first page.
            table.reset(message.total if message.total is not None else len(message.pages[0]),
                        message.generation)
            first_page = message.pages.get(0, [])
            if self._keep_group is not None:
                # The group's first line, wherever the new order puts it (by index it could be another
                # run's line once the group's shards are listed, or folded, above it).
                first = [i for i, row in enumerate(first_page) if row.group == self._keep_group]
                if first:
                    table.cursor = first[0]
                self._keep_group = None
            elif kept is not None:
                same = [i for i, row in enumerate(first_page)
                        if row.id == kept.id and (row.progress is None) == (kept.progress is None)]
                table.cursor = same[0] if same else min(at, max(0, table.total - 1))
            self.counted = message.total is not None
        elif message.total is not None:
            table.set_total(message.total)
            self.counted = True
        for page, rows in message.pages.items():
            table.set_page(page, rows, message.generation)
        if message.fresh:
            self.loaded_generation = message.generation
        self._show_summary(table.total)

    def _show_summary(self, total: int) -> None:
        query = self.run_query
        if not self.counted and not self.grouped:
            self.query_one("#summary", Static).update(f"{total:,}+ runs (counting …)", layout=False)
            return
        order = "▼" if query.descending else "▲"
        metric = f" · metric {query.metric}" if query.metric else ""
        marked = self.query_one(RunTable).selected
        picked = f" · {len(marked)} marked" if marked else ""
        # One line of fixed height: no need to lay the screen out again.
        self.query_one("#summary", Static).update(
            f"{total:,} runs · sorted by {query.sort} {order}{metric}{picked}", layout=False
        )

    @on(RunTable.ShardsToggled)
    def _shards_toggled(self, message: RunTable.ShardsToggled) -> None:
        # The group's line stays under the cursor (see `_loaded`).
        table = self.query_one(RunTable)
        expanded = self.run_query.expanded ^ {message.group}
        table.expanded = expanded
        self._keep_group = message.group
        self.run_query = replace(self.run_query, expanded=expanded)

    @on(RunTable.PageWanted)
    def _page_wanted(self, message: RunTable.PageWanted) -> None:
        if message.generation == self._generation:
            self.load_page(self.run_query, message.generation, message.page)

    def on_store_changed(self, message: StoreChanged) -> None:
        self.refresh_data()

    def on_screen_resume(self) -> None:
        if self.loaded_generation >= 0:
            self.refresh_data()

    def refresh_data(self) -> None:
        if self.grouped:
            self.load_groups(self.run_query)
        elif self.loaded_generation != self._generation:
            # The query's first page is still on its way: a reload would cancel
            # that load (same worker group) and, not being one, never show the query.
            self.load_first(self.run_query, self._generation)
        else:
            table = self.query_one(RunTable)
            self.reload_visible(self.run_query, self._generation, table.visible_pages())

    # Filter ------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one("#groups" if self.grouped else "#runs").focus()

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(0.3, lambda: self.apply_filter(event.value, quiet=True))

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        if self.apply_filter(event.value, quiet=False):
            self.action_leave_filter()

    def apply_filter(self, text: str, *, quiet: bool) -> bool:
        """Show the runs that `text` selects; False (and a message) if it cannot be read."""
        bar = self.query_one("#filter", Input)
        try:
            query = parse_filter(text, self.run_query)
        except FilterError as exc:
            bar.add_class("-invalid")
            if not quiet:
                self.notify(str(exc), title="filter", severity="error")
            return False
        bar.remove_class("-invalid")
        if query != self.run_query:
            self.run_query = query
            if self.grouped:
                self.load_groups(query)
        return True

    # Sorting -----------------------------------------------------------------

    def action_sort_next(self) -> None:
        position = SORTABLE.index(self.run_query.sort)
        self.run_query = replace(self.run_query, sort=SORTABLE[(position + 1) % len(SORTABLE)])

    def action_sort_reverse(self) -> None:
        self.run_query = replace(self.run_query, descending=not self.run_query.descending)

    @on(RunTable.SortClicked)
    def _sort_clicked(self, message: RunTable.SortClicked) -> None:
        if message.column == self.run_query.sort:
            self.action_sort_reverse()
        else:
            self.run_query = replace(self.run_query, sort=message.column, descending=False)

    # Grouping ----------------------------------------------------------------

    def action_toggle_groups(self) -> None:
        self.grouped = not self.grouped

    def watch_grouped(self, grouped: bool) -> None:
        self.query_one(RunTable).display = not grouped
        groups = self.query_one("#groups", DataTable)
        groups.display = grouped
        if grouped:
            self.load_groups(self.run_query)
            groups.focus()
        else:
            self.query_one(RunTable).focus()

    @work(thread=True, exclusive=True, group="groups", exit_on_error=False)
    def load_groups(self, query: RunQuery) -> None:
        self.post_message(self.GroupsLoaded(experiment_groups(self.store, query)))

    @on(GroupsLoaded)
    def _groups_loaded(self, message: GroupsLoaded) -> None:
        table = self.query_one("#groups", DataTable)
        if not table.columns:
            table.add_columns("experiment", "runs", "running", "queued", "failed", "succeeded",
                              "last started")
        table.clear()
        for group in message.groups:
            count = group.by_status.get
            table.add_row(group.experiment, f"{group.runs:,}", count("running", 0), count("queued", 0),
                          count("failed", 0), count("succeeded", 0), format_time(group.last_started),
                          key=group.experiment)
        self._show_summary(sum(g.runs for g in message.groups))

    @on(DataTable.RowSelected, "#groups")
    def _group_chosen(self, event: DataTable.RowSelected) -> None:
        name = str(event.row_key.value)
        bar = self.query_one("#filter", Input)
        kept = [t for t in bar.value.split() if not t.startswith(("exp:", "experiment:"))]
        bar.value = " ".join([*kept, f"exp:{name}"])
        self.apply_filter(bar.value, quiet=False)
        self.grouped = False

    def palette_commands(self) -> Iterable[SystemCommand]:
        """What this screen adds to the command palette: sorting, grouping, common filters."""
        for column in SORTABLE:
            yield SystemCommand(f"Sort by {column}", f"Order the runs by {column}",
                                partial(self._sort_by, column), discover=False)
        yield SystemCommand("Group by experiment", "One line per experiment (g)", self.action_toggle_groups)
        for status in ("failed", "running", "queued", "succeeded"):
            yield SystemCommand(f"Show {status} runs", f"Filter: status:{status}",
                                partial(self._filter_to, f"status:{status}"), discover=False)
        yield SystemCommand("Show every run", "Clear the filter", partial(self._filter_to, ""))

    def _sort_by(self, column: str) -> None:
        self.run_query = replace(self.run_query, sort=column)

    def _filter_to(self, text: str) -> None:
        self.query_one("#filter", Input).value = text
        self.apply_filter(text, quiet=False)

    # Runs --------------------------------------------------------------------

    @on(RunTable.Opened)
    def _opened(self, message: RunTable.Opened) -> None:
        self.post_message(OpenRun(message.run_id))

    def current_run(self) -> RunListRow | None:
        return None if self.grouped else self.query_one(RunTable).current

    def action_compare(self) -> None:
        table = self.query_one(RunTable)
        ids = list(table.selected)
        if len(ids) < 2 and table.current is not None and table.current.id not in ids:
            ids.append(table.current.id)
        if len(ids) < 2:
            self.notify("Mark two or more runs with space, then press c.", title="compare")
            return
        from mayuri.tui.screens.compare_screen import CompareScreen

        self.app.push_screen(CompareScreen(ids))

