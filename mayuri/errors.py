"""Errors that Mayuri's core raises, and the exit codes the CLI maps them to.

Core code raises these and never prints or exits; only the CLI turns them into
a message and an exit code.
"""

from __future__ import annotations

import enum
from pathlib import Path


class ExitCode(enum.IntEnum):
    """Documented exit codes of the `mayuri` command."""

    OK = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 130


class MayuriError(Exception):
    """Base of every error a user can cause; carries where and how to fix it."""

    title = "error"
    exit_code = ExitCode.USAGE

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.hint = hint

    @property
    def location(self) -> str:
        """`file:line:col` as far as it is known, or an empty string."""
        if self.path is None:
            return ""
        parts = [self.path]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            text += f" {self.hint}"
        return text


class ConfigError(MayuriError):
    """mayuri.toml is missing, malformed or has wrong values."""

    title = "config error"


class ExperimentError(MayuriError):
    """The experiment file is malformed, has unknown keys, cycles or bad values."""

    title = "experiment error"


class StoreError(MayuriError):
    """The store cannot be opened, is locked, corrupt, or newer than this Mayuri."""

    title = "store error"


class ExecutorError(MayuriError):
    """A job could not be started (missing program, refused resources)."""

    title = "executor error"


class GpuError(MayuriError):
    """GPUs were asked for but none can be had."""

    title = "gpu error"


class RunNotFound(MayuriError):
    """A RUN argument matched no run, or several."""

    title = "no such run"
