"""torch's OutOfMemoryError is recognised through the job's excepthook, even with stderr gone."""

from __future__ import annotations

from tests.conftest import Project

JOB = """
    import os
    import sys

    class OutOfMemoryError(RuntimeError):
        pass

    OutOfMemoryError.__module__ = "torch"
    attempt = int(os.environ["MAYURI_ATTEMPT"])
    if attempt == 1:
        # Nothing of the traceback reaches stderr.log: only the excepthook's record can tell.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    print("fits now")
"""


def test_oom_seen_by_the_excepthook_is_retried(project: Project) -> None:
    project.write("job.py", JOB)
    project.write("exp.yaml", """
        jobs:
          train:
            run: python job.py
            retry: {oom: {max: 2, strategy: wait, wait: 0}}
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    [run] = project.runs()
    attempts = project.show(run["id"])["attempts"]
    assert [a["cause"] for a in attempts] == ["gpu_oom", None]
    assert (project.root / ".mayuri" / "runs" / run["id"] / "stderr.log").read_text() == ""
