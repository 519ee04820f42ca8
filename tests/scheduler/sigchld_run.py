"""Runs an experiment in-process with a SIGCHLD handler that reaps every child (test 15's trap)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from mayuri.run_experiment import RunRequest, run_experiment
from mayuri.scheduler.events import SilentReporter


def reap_everything(signum: int, frame: object) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


signal.signal(signal.SIGCHLD, reap_everything)
result = run_experiment(RunRequest(file=Path(sys.argv[1])), SilentReporter(), root=Path.cwd())
print(" ".join(f"{s.instance.key}={s.state}" for s in result.outcome.slots))
