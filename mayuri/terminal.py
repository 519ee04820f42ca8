"""Where the CLI's output goes: whether it can be styled, and Rich consoles made only when used.

Importing Rich costs a command tens of milliseconds. A cached `mayuri run`
whose output goes to a file or a pipe prints the same plain lines Rich would
print there, without loading it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console


def plain(stream: TextIO) -> bool:
    """Whether Rich would write to `stream` without styles: no terminal, and no variable that forces them."""
    if "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:
        return False  # Rich's own rules decide
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True  # no isatty, or a closed stream: Rich treats both as no terminal


class LazyConsole:
    """A Rich console made when first used; any attribute of a Rich Console is passed through."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    @property
    def stream(self) -> TextIO:
        """The stream it writes to, looked up at each use as Rich does (tests replace it)."""
        return sys.stderr if self._options.get("stderr") else sys.stdout

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)
