"""The run contract: what a job finds and leaves in its run folder, and the variables it is given.

One place for the names that the job side (`mayuri.job`, `tracking/`), the
scheduler and its executors, results, gc, `logs` and the dashboard must
agree on; every executor keeps this contract whatever runs the job. Only
`closure/site/sitecustomize.py` spells some of them again: it runs inside
the job before `mayuri` may be imported, and imports nothing of it.

A run folder (`<store>/runs/<run id>/`) holds:

- `stdout.log`, `stderr.log`: the job's output, appended by every attempt;
- `params.json`: the params as the job sees them; `params_used.txt`, the keys
  it read; `script_params.json`, those `mayuri.init(params=...)` gave;
- `outputs.json` (its lock `.outputs.lock`): the values the job output;
- `exit-N.json`: how attempt N ended, written by the local executor's shepherd;
- `run.json`: the run's records, for `doctor --rebuild`;
- `checkpoints/N/`: attempt N's checkpoints; and whatever the job writes there;
- `spool/`: on a remote node (MAYURI_SPOOL set), what the job side would have
  written to the store (metrics, artifacts), as files the head ingests
  (`mayuri.executors.remote`).
"""

from __future__ import annotations

from pathlib import Path

STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
PARAMS_FILE = "params.json"
# The keys of params() a job read, one a line (`*`: all of them); see mayuri.job.UsedParams.
PARAMS_USED_FILE = "params_used.txt"
# What `mayuri.init(params=...)` gave inside a job: the params as the script sees them.
SCRIPT_PARAMS_FILE = "script_params.json"
OUTPUTS_FILE = "outputs.json"
OUTPUTS_LOCK = ".outputs.lock"
MANIFEST_FILE = "run.json"
CHECKPOINTS_DIR = "checkpoints"

# The variables every job is given.
RUN_ID_VAR = "MAYURI_RUN_ID"
RUN_DIR_VAR = "MAYURI_RUN_DIR"
STORE_VAR = "MAYURI_STORE"
ATTEMPT_VAR = "MAYURI_ATTEMPT"
PROJECT_ROOT_VAR = "MAYURI_PROJECT_ROOT"
# The params (JSON), when small enough for a variable; else the job reads params.json.
PARAMS_VAR = "MAYURI_PARAMS"
CHECKPOINT_DIR_VAR = "MAYURI_CHECKPOINT_DIR"
# The checkpoint folder a retry (or a resumed run) starts from.
RESUME_FROM_VAR = "MAYURI_RESUME_FROM"
# Set ("1") when the job runs on a node that must not open the store: the job side spools instead.
SPOOL_VAR = "MAYURI_SPOOL"
SPOOL_DIR = "spool"


def log_file(run_dir: Path, stream: str) -> Path:
    """`stdout.log` or `stderr.log` of a run (`stream`: "stdout" or "stderr")."""
    return run_dir / f"{stream}.log"


def exit_record(run_dir: Path, attempt: int) -> Path:
    """Where the end of attempt `attempt` of a run is written down (`exit-N.json`)."""
    return run_dir / f"exit-{attempt}.json"


def checkpoint_dir(run_dir: Path, attempt: int) -> Path:
    """Where attempt `attempt` of a run keeps its checkpoints."""
    return run_dir / CHECKPOINTS_DIR / str(attempt)


def spool_dir(run_dir: Path) -> Path:
    """Where a job on a remote node leaves its metrics and artifacts for the head (`spool/`)."""
    return run_dir / SPOOL_DIR
