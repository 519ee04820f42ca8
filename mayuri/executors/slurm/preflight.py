"""Before anything is submitted: submitit installed, `sbatch` on the PATH, the partition known to `sinfo`.

Each failure is an ExecutorError (exit 2) naming what is missing and how to
get it, raised before any job of the run starts.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

from mayuri.errors import ExecutorError


def check(partition: str | None) -> None:
    """Raise ExecutorError when jobs cannot be submitted to Slurm from here."""
    if importlib.util.find_spec("submitit") is None:
        raise ExecutorError(
            "the slurm executor needs submitit, which is not installed.",
            hint="pip install 'mayuri[slurm]' (in the environment the head and the nodes use).",
        )
    if shutil.which("sbatch") is None:
        raise ExecutorError(
            "the slurm executor cannot submit: `sbatch` is not on the PATH.",
            hint="Run `mayuri run` on a machine that can submit to Slurm (a login node), "
                 "or load Slurm's module first (`module load slurm`).",
        )
    if partition is not None:
        known = partitions()
        if known is not None and partition not in known:
            raise ExecutorError(
                f"Slurm has no partition '{partition}' ([executor.slurm] partition); `sinfo` lists: "
                f"{', '.join(sorted(known)) or 'none'}.",
                hint="Name one of those in mayuri.toml, or leave `partition` out for the cluster's default.",
            )


def partitions() -> set[str] | None:
    """The partitions `sinfo` lists (None when it cannot be asked: then Slurm itself will judge)."""
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return {line.strip() for line in done.stdout.splitlines() if line.strip()}
