"""`metrics_from: {stdout: REGEX}`: a job's printed lines turned into metrics as they appear.

For programs that cannot be edited (`iter 100: loss 2.31`). The scheduler
starts the job's command under this wrapper: `python -m
mayuri.tracking.stdout_metrics PATTERNS_JSON CLOSURE_DIR -- ARGV...` (or
`--shell TEXT`).
Each line the command prints is copied to the wrapper's stdout (the run's
stdout.log) at once, then matched against every pattern; a match logs its
named groups as metrics (`step` is the step, every other group a metric
name) through `mayuri.log`, like a line of the job itself would. The wrapper
runs without MAYURI_CLOSURE_DIR and hands it to the command, so the closure
bootstrap audits the command, not the wrapper; it ends with the command's exit status (a
command killed by a signal kills it with the same signal), so causes and
retries read the same.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence


def wrap(command: Sequence[str] | str, patterns: Sequence[str], closure_dir: str) -> list[str]:
    """The argv that runs `command` (a list, or a shell text) with its stdout read for metrics;
    `closure_dir` is set for the command only."""
    head = [sys.executable, "-m", "mayuri.tracking.stdout_metrics", json.dumps(list(patterns)), closure_dir]
    if isinstance(command, str):
        return [*head, "--shell", command]
    return [*head, "--", *command]


def metrics_of(line: str, compiled: Sequence[re.Pattern[str]]) -> tuple[int | None, dict[str, float]]:
    """The step and the metrics a printed line holds (an empty mapping when no pattern matches)."""
    step: int | None = None
    found: dict[str, float] = {}
    for pattern in compiled:
        match = pattern.search(line)
        if match is None:
            continue
        for name, text in match.groupdict().items():
            if text is None:
                continue
            try:
                number = float(text)
            except ValueError:
                continue
            if name == "step":
                step = int(number)
            else:
                found[name] = number
    return step, found


def main(argv: Sequence[str]) -> int:
    compiled = [re.compile(p) for p in json.loads(argv[0])]
    if argv[2] == "--shell":
        command: list[str] = ["/bin/sh", "-c", argv[3]]
    else:
        command = list(argv[3:])
    env = dict(os.environ)
    env["MAYURI_CLOSURE_DIR"] = argv[1]  # the command is the job: its closure is recorded
    # Lines should arrive as they are printed, not when a pipe's buffer fills.
    env.setdefault("PYTHONUNBUFFERED", "1")
    # The scheduler stops the whole process group; the wrapper stays to read the last lines.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    try:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, env=env,
                                 preexec_fn=_default_signals)
    except OSError as exc:
        print(f"mayuri: cannot start '{command[0]}': {exc.strerror}", file=sys.stderr)
        return 127
    import mayuri

    assert child.stdout is not None
    source, sink = child.stdout.fileno(), sys.stdout.fileno()
    log = mayuri.log
    partial = b""
    # Whatever the pipe holds is copied at once (one write per read, not per line), then split into lines.
    while chunk := os.read(source, 1 << 16):
        _write_all(sink, chunk)
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        for line in lines:
            step, found = metrics_of(line.decode("utf-8", "replace"), compiled)
            if found:
                log(found, step=step)
    if partial:
        step, found = metrics_of(partial.decode("utf-8", "replace"), compiled)
        if found:
            log(found, step=step)
    code = child.wait()
    mayuri.finish()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code if code >= 0 else 128 - code


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _default_signals() -> None:
    # The command gets the usual signal dispositions back (ignored ones are inherited across exec).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
