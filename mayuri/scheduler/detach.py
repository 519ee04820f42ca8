"""`mayuri run --detach`: the same run, in a background process that outlives the terminal.

The child is a plain `mayuri run` in its own session (so closing the terminal
does not hang it up), with its output in a log file in the store. The parent
waits a moment so that a bad file or config still fails in the foreground
with its message and exit code; after that, `mayuri runs` shows progress.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mayuri.errors import ExecutorError, ExitCode, MayuriError
from mayuri.store.perms import make_dirs

STARTUP_WAIT = 2.0


class DetachedFailed(MayuriError):
    """The background run stopped at once; carries its message and exit code."""

    title = "run failed"

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(code) if code in ExitCode._value2member_map_ else ExitCode.FAILED


@dataclass(frozen=True)
class Detached:
    """A background run: its process id and log file (exit code when it already ended)."""

    pid: int
    log: Path
    code: int | None = None


def detach(args: Sequence[str], *, cwd: Path, store_root: Path) -> Detached:
    """Start `mayuri run ARGS` in the background; raise its error if it fails straight away."""
    folder = make_dirs(store_root / "schedulers", store_root)
    log = folder / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    with open(log, "wb") as out:
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "mayuri", "run", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise ExecutorError(f"cannot start the background run: {exc}.") from None
    try:
        code = child.wait(STARTUP_WAIT)
    except subprocess.TimeoutExpired:
        return Detached(child.pid, log)
    if code in (ExitCode.OK, ExitCode.FAILED):
        return Detached(child.pid, log, code)
    text = log.read_text(encoding="utf-8", errors="replace").strip()
    raise DetachedFailed(text.splitlines()[-1] if text else f"exited with code {code}", code)
