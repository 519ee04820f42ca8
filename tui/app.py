"""The dashboard application: for now one screen, the newest runs of the store."""

from __future__ import annotations

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header

from mayuri.config import Settings
from mayuri.run_experiment import open_project_store
from mayuri.store.queries import RunFilter, RunRow, list_runs
from mayuri.units import format_duration

COLUMNS = ("id", "experiment", "job", "status", "duration", "user", "host")


class MayuriApp(App[None]):
    """Runs of one store, newest first, refreshed in the background."""

    TITLE = "Mayuri"
    BINDINGS = [
        Binding("r", "refresh", "Refresh", id="refresh", tooltip="Read the store again"),
        Binding("q", "quit", "Quit", id="quit", tooltip="Leave the dashboard"),
    ]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_columns(*COLUMNS)
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load_runs()

    @work(thread=True, exclusive=True, group="store", exit_on_error=False)
    def load_runs(self) -> None:
        store = open_project_store(self.settings)
        try:
            rows = list_runs(store, RunFilter(limit=1000))
        finally:
            store.close()
        self.call_from_thread(self._show, rows)

    def _show(self, rows: list[RunRow]) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        for run in rows:
            table.add_row(run.short_id, run.experiment, run.job, run.status,
                          format_duration(run.duration), run.user, run.host, key=run.id)
        self.sub_title = f"{len(rows)} runs"


def make_app(settings: Settings) -> MayuriApp:
    """The dashboard for a project's store (used by `mayuri tui` and by the tests)."""
    return MayuriApp(settings)
