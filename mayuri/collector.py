"""The cyclic garbage collector of a `mayuri` process: off while a command starts, on again for long ones.

What a command allocates while it imports and starts (modules, classes,
functions: tens of thousands of objects) lives until the process exits, and
the collector's passes over it cost a short command like a cached `mayuri
run` several milliseconds for nothing; reference counting still frees the
rest. A command that runs for long (a scheduler with jobs in flight, the
dashboard, a followed log) turns collection back on, so that the cycles it
makes over hours are freed. At exit, the interpreter's last full collection
would walk every object once more (15-25 ms); the objects are frozen first,
which that collection skips. Nothing that matters waits on it: the store is
closed, files are closed by `with`, and streams are flushed by the
interpreter itself.
"""

from __future__ import annotations

import gc


def pause_for_startup() -> None:
    """Called first thing by the `mayuri` entry point."""
    gc.disable()


def long_running() -> None:
    """Collect cycles again from now on (a no-op where collection was never paused)."""
    gc.enable()


def before_exit() -> None:
    """Called last by the `mayuri` entry point: the interpreter's final collection skips what is frozen."""
    gc.freeze()
