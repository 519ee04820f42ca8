"""Did-you-mean suggestions for misspelt names in user input."""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `— did you mean 'x'?` for the closest choice, or a list of the valid ones."""
    import difflib  # only when the user made a mistake: not worth start-up time

    options = sorted(set(choices))
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if not options:
        return ""
    return "expected one of: " + ", ".join(f"'{o}'" for o in options) + "."
