"""What a parse of an experiment file depended on: the files it read and the paths it resolved.

While `recording()` is active, the loader notes every file it reads (with the
text it got) and every path it resolves (with the result). Together with the
current folder and the path given, that is all the parse looked at, which is
what makes a parsed file safe to reuse (`mayuri.experiment.parsed_cache`).
This module only records; it reads nothing itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class Sources:
    """The (path, text) of each file read and the (path, resolved) of each path resolved, in order.

    A plain class, not a dataclass: this module loads on every `mayuri run`,
    and making a dataclass costs about half a millisecond.
    """

    def __init__(self) -> None:
        self.files: list[tuple[str, str]] = []
        self.resolved: list[tuple[str, str]] = []


_recording: list[Sources] = []


@contextlib.contextmanager
def recording() -> Iterator[Sources]:
    """Record what the parses inside the block depend on."""
    sources = Sources()
    _recording.append(sources)
    try:
        yield sources
    finally:
        _recording.remove(sources)


def read(path: Path, text: str) -> None:
    """Note that the loader read `path` and got `text`."""
    if _recording:
        _recording[-1].files.append((str(path), text))


def resolve(path: Path) -> Path:
    """`path.resolve()`, noted."""
    resolved = path.resolve()
    if _recording:
        entry = (str(path), str(resolved))
        # Once is enough: a reuse resolves each noted path again.
        if entry not in _recording[-1].resolved:
            _recording[-1].resolved.append(entry)
    return resolved
