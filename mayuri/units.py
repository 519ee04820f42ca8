"""Parsing and printing durations (`2h`, `30d`) and sizes (`4GiB`, `50GB`)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`: a number of seconds or text like `90s`, `30m`, `2h`, `30d`."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (write e.g. 90s, 30m, 2h or 7d)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(value: str | int | float) -> int:
    """Bytes in `value`: a number of bytes or text like `4GiB`, `512MB`, `16G`."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a size cannot be negative: {value!r}")
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"not a size: {value!r} (write e.g. 4GiB, 512MB)")
    unit = (match.group(2) or "").lower()
    prefix = unit[:1] if unit[:1] in _SIZE_POWERS and unit[:1] != "" else ""
    if unit and unit not in ("b",) and not prefix:
        raise ValueError(f"not a size: {value!r}")
    base = 1024 if "i" in unit or unit in ("k", "m", "g", "t", "p") else 1000
    return int(float(match.group(1)) * base ** _SIZE_POWERS[prefix])


def format_size(size: float) -> str:
    """A byte count for people (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def format_duration(seconds: float | None) -> str:
    """A duration for people: `0.4s`, `12s`, `3m05s`, `2h10m`."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
