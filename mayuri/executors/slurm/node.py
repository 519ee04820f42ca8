"""What submitit calls on a Slurm node: the remote runner, with what Slurm gave the job added to its environment.

The job's environment is the head's (`LaunchSpec.env`); on the node, the
variables by which Slurm hands over the job's allocation (its GPUs above
all) win over the head's, and Slurm's own `SLURM_*` are passed on. The rest
is the remote job contract (`mayuri.executors.remote.runner`). Imported on
the node by submitit's unpickling: it must stay importable without submitit.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

# Set by Slurm for the GPUs it allocated; a job that asked for none keeps the head's (none visible).
NODE_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "TMPDIR")


def node_env(head_env: Mapping[str, str], node: Mapping[str, str]) -> dict[str, str]:
    """The job's environment on a node: the head's, with the node's allocation variables in it."""
    env = dict(head_env)
    env.update({name: value for name, value in node.items() if name.startswith("SLURM_") or name in NODE_VARS})
    return env


def run_attempt(spec: dict[str, Any]) -> int:
    """Run one attempt on this node to its end (the runner writes `exit-N.json`); its exit status."""
    from mayuri.executors.remote.runner import run

    # submitit answers SIGUSR2 by raising in this process, which would leave the job without its
    # runner. The executor asks Slurm for no such warning (`options.NO_WARNING`); should one come
    # anyway (a `signal` in `additional`), it is ignored here and in the job (an ignored signal stays
    # ignored across exec): the time limit ends the job by SIGTERM, through the runner.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    return run({**spec, "env": node_env(spec["env"], os.environ)})
