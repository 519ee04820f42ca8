"""The dashboard application: opens the store off the UI thread, watches it, routes screens.

`make_app` builds it for `mayuri tui` and for the tests. The app reads the
store only through `mayuri.store` query functions (in its screens' thread
workers), never imports the scheduler, and never writes: a reader never
blocks a `mayuri run`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from mayuri.config import Settings
from mayuri.errors import ExitCode
from mayuri.store import Store, open_project_store, schema_version
from mayuri.store.browse_queries import ChangeWatch
from mayuri.store.db import DB_NAME
from mayuri.tui.messages import OpenRun, StoreChanged
from mayuri.tui.store_reading import describe_error


def stored_schema(db_path: Path) -> int | None:
    """The schema version in a database file's header (bytes 60-63, SQLite's user_version), if any.

    Read before the store is opened, so that an upgrade on open can be told
    to the user; a version still in the write-ahead log may be missed, which
    only means no message.
    """
    try:
        with open(db_path, "rb") as handle:
            header = handle.read(64)
    except OSError:
        return None
    return int.from_bytes(header[60:64], "big") if len(header) == 64 else None


class MayuriApp(App[None]):
    """Runs, one run's detail, comparison, caches, GPUs and the queue of one project's store."""

    TITLE = "Mayuri"
    CSS_PATH = "styles/app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave the dashboard"),
        Binding("f2", "caches", "Caches", id="app.caches",
                tooltip="Cached results per experiment and job, and what gc would free"),
        Binding("f3", "gpus", "GPUs", id="app.gpus", tooltip="GPUs, who holds them, and the queue"),
        Binding("ctrl+t", "toggle_theme", "Theme", id="app.theme",
                tooltip="Switch between the dark and the light theme"),
    ]

    def __init__(self, settings: Settings, *, poll_interval: float = 1.0) -> None:
        super().__init__()
        self.settings = settings
        self.poll_interval = poll_interval
        self.store: Store | None = None
        self._watch = ChangeWatch()
        self._pending_change = False
        self.sub_title = settings.name
        # Users remap keys by binding id in mayuri.toml's [keys] table.
        self.set_keymap(settings.keys)

    def compose(self) -> ComposeResult:
        # Only a line here: this screen lasts a moment, and when the store fails
        # at once a header still composing would race the error screen's.
        yield Static(f"Opening the store at {self.settings.store.path} …", id="opening")

    def on_mount(self) -> None:
        self.open_store()

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def open_store(self) -> Store:
        before = stored_schema(self.settings.store.path / DB_NAME)
        store = open_project_store(self.settings)
        if before is not None and 0 < before < schema_version():
            self.notify(f"The store had schema version {before}; it was upgraded to {schema_version()} "
                        "(as every mayuri command does). Older Mayuri versions can no longer open it.",
                        title="store upgraded", timeout=10)
        if store.read_only:
            self.notify("You may read this store but not write it: browsing works; cancel and rerun do not.",
                        title="read-only store", timeout=10)
        return store

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        group = event.worker.group
        if group == "open" and event.state == WorkerState.SUCCESS:
            self.store = event.worker.result
            from mayuri.tui.screens.runs_screen import RunsScreen

            self.push_screen(RunsScreen())
            self.set_timer(self.poll_interval, self.poll_store)
        elif group == "open" and event.state == WorkerState.ERROR:
            from mayuri.tui.screens.store_error_screen import StoreErrorScreen

            self.push_screen(StoreErrorScreen(describe_error(event.worker.error)))
        elif group == "poll" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR):
            if not self.screen_stack:
                return  # the app is closing
            if event.state == WorkerState.SUCCESS and event.worker.result:
                self._pending_change = True
            self._deliver_change()
            self.set_timer(self.poll_interval, self.poll_store)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll_store(self) -> bool:
        assert self.store is not None
        return self._watch.changed(self.store)

    def _deliver_change(self) -> None:
        # While a confirmation is open the screen under it must not move.
        if self._pending_change and not isinstance(self.screen, ModalScreen):
            self._pending_change = False
            self.screen.post_message(StoreChanged())

    def on_open_run(self, message: OpenRun) -> None:
        from mayuri.tui.screens.run_screen import RunScreen

        self.push_screen(RunScreen(message.run_id))

    def action_caches(self) -> None:
        from mayuri.tui.screens.caches_screen import CachesScreen

        if self.store is not None and not isinstance(self.screen, CachesScreen):
            self.push_screen(CachesScreen())

    def action_gpus(self) -> None:
        from mayuri.tui.screens.gpus_screen import GpusScreen

        if self.store is not None and not isinstance(self.screen, GpusScreen):
            self.push_screen(GpusScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def fail(self, message: str) -> None:
        """Leave with the store's problem on the terminal and exit code 2."""
        self.exit(return_code=int(ExitCode.USAGE), message=message)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Caches", "Cached results and the gc preview", self.action_caches)
        yield SystemCommand("GPUs and queue", "GPUs, their holders, queued and running runs",
                            self.action_gpus)
        yield SystemCommand("Toggle light/dark theme", "Switch themes", self.action_toggle_theme)
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()

    def on_unmount(self) -> None:
        if self.store is not None:
            self.store.close()


def make_app(settings: Settings, *, poll_interval: float = 1.0) -> MayuriApp:
    """The dashboard for a project's store (used by `mayuri tui` and by the tests)."""
    return MayuriApp(settings, poll_interval=poll_interval)
