"""The environment that makes a job's Python processes report their closure.

`closure_env` puts `mayuri/closure/site` (whose `sitecustomize` installs the
audit hook) first on PYTHONPATH and tells the hook where to write and what to
watch. Child processes inherit it, so a whole process tree reports into one
closure folder.
"""

from __future__ import annotations

import os
from pathlib import Path

SITE_DIR = Path(__file__).resolve().parent / "site"
# Mayuri itself is the tool, not the job's code, even when it is installed
# inside the project (an editable install in Mayuri's own repository): its
# version is recorded with the environment instead.
MAYURI_PACKAGE = Path(__file__).resolve().parents[1]


def closure_env(
    env: dict[str, str], closure_dir: Path, project_root: Path, exclude: list[Path]
) -> dict[str, str]:
    """A copy of `env` under which Python processes record their closure into `closure_dir`."""
    site = str(SITE_DIR)
    result = dict(env)
    existing = env.get("PYTHONPATH", "")
    # A nested run (a job launching mayuri) must not stack the folder twice.
    rest = [entry for entry in existing.split(os.pathsep) if entry != site] if existing else []
    result["PYTHONPATH"] = os.pathsep.join([site, *rest])
    closure_dir = Path(os.path.abspath(closure_dir))
    closure_dir.mkdir(parents=True, exist_ok=True)
    result["MAYURI_CLOSURE_DIR"] = str(closure_dir)
    # The hook compares unresolved paths by prefix, so it gets resolved ones.
    result["MAYURI_PROJECT_ROOT"] = os.path.realpath(project_root)
    result["MAYURI_CLOSURE_EXCLUDE"] = os.pathsep.join(
        os.path.realpath(path) for path in [*exclude, MAYURI_PACKAGE]
    )
    return result
