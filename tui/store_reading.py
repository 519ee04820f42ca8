"""What every screen that reads the store shares: the open store and one failure handler.

Screens read in thread workers (exclusive, grouped, `exit_on_error=False`);
a worker that fails is reported here, once, as a notification, and the
screen keeps what it showed before. Nothing here touches the event loop's
thread with a blocking call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.worker import Worker, WorkerState

from mayuri.errors import MayuriError

if TYPE_CHECKING:
    from mayuri.config import Settings
    from mayuri.store import Store


def describe_error(error: BaseException | None) -> str:
    """One line for a user: Mayuri's own message, or the exception's type and text."""
    if isinstance(error, MayuriError):
        return str(error)
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"


class ReadsStore:
    """Mixin for screens: `self.store`, and failed workers shown as error notifications."""

    app: Any

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.settings
        return settings

    @property
    def store(self) -> Store:
        store = self.app.store
        assert store is not None, "screens are pushed only once the store is open"
        return store

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.app.notify(describe_error(event.worker.error), title="could not read the store",
                            severity="error", timeout=8)
