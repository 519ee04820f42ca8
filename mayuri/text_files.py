"""Which closure files are kept as text in the store, so that `diff` and the dashboard can show how they changed.

Code files are always kept (DESIGN: "code files are also kept in blobs/");
besides them, every other file of a closure that is text (no NUL byte in its
first 8 KiB, valid UTF-8 there) and at most TEXT_LIMIT bytes: a config file
read with `open()`, a YAML or JSON the job parsed. Larger or binary files are
identified by their hash only.
"""

from __future__ import annotations

from pathlib import Path

TEXT_LIMIT = 1 << 20  # 1 MiB
_SNIFF = 8192


def is_text(data: bytes) -> bool:
    """Whether the start of a file looks like text (no NUL byte, UTF-8 but for a cut last character)."""
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(data) - 3 and exc.reason == "unexpected end of data"
    return True


def keeps_as_text(path: Path, size: int) -> bool:
    """Whether a closure file of `size` bytes at `path` is kept as text (small enough, and text)."""
    if size > TEXT_LIMIT:
        return False
    try:
        with open(path, "rb") as handle:
            return is_text(handle.read(_SNIFF))
    except OSError:
        return False
