"""Shown instead of the runs when the store cannot be opened: the reason, and how to leave.

Leaving exits with code 2 and prints the same message on the terminal, as
the command line does for an unusable store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

if TYPE_CHECKING:
    from mayuri.tui.app import MayuriApp


class StoreErrorScreen(Screen[None]):
    """The store could not be opened; nothing else is possible."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "leave", "Quit", id="store_error.quit", tooltip="Leave with exit code 2"),
    ]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="store-error"):
            yield Static("The store cannot be opened", id="store-error-title")
            yield Static(self.message, id="store-error-message", markup=False)
            yield Static("Press q to leave.", id="store-error-hint")
        yield Footer()

    def action_leave(self) -> None:
        cast("MayuriApp", self.app).fail(f"store error: {self.message}")
