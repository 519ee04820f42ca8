"""The environment that makes a job's processes report their closure.

`closure_env` puts `mayuri/closure/site` (whose `sitecustomize` installs the
audit hook) first on PYTHONPATH and tells the hook where to write and what to
watch. `with_tracer` preloads the C file-access tracer (`tracer.c`, built at
install as `_tracer*.so`) into every process, Python or not, chained before a
project's own LD_PRELOAD. Child processes inherit both, so a whole process
tree reports into one closure folder.
"""

from __future__ import annotations

import functools
import glob
import os
import site
import subprocess
import sys
from pathlib import Path

SITE_DIR = Path(__file__).resolve().parent / "site"
# Mayuri itself is the tool, not the job's code, even when it is installed
# inside the project (an editable install in Mayuri's own repository): its
# version is recorded with the environment instead.
MAYURI_PACKAGE = Path(__file__).resolve().parents[1]
# Set to 0 to run jobs without the C tracer (the Python audit hook alone), as
# where it cannot be built or loaded.
TRACER_VAR = "MAYURI_TRACER"
# The store's runs folder, both spellings: reads in other runs' folders are recorded.
TRACE_RUNS_VAR = "MAYURI_TRACE_RUNS"


def tracer_library() -> str | None:
    """The C tracer's shared library when it is built and loads here; None: Python reads only."""
    if os.environ.get(TRACER_VAR, "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    return _loadable_tracer()


@functools.cache
def _loadable_tracer() -> str | None:
    # Checked once per process with a real preload: a library the loader
    # refuses (another architecture, a sanitizer runtime) would print an
    # error into every job's stderr.
    found = sorted(glob.glob(str(Path(__file__).resolve().parent / "_tracer*.so")))
    if not found or sys.platform != "linux":
        return None
    library = found[0]
    try:
        probe = subprocess.run(
            ["/bin/sh", "-c", ":"], env={"LD_PRELOAD": library, "PATH": os.defpath},
            capture_output=True, timeout=30, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return library if probe.returncode == 0 and not probe.stderr else None


def roots_env(roots: tuple[Path, ...]) -> dict[str, str]:
    """What tells the audit hook about `[cache] roots` (the tracer records every non-system read)."""
    return {"MAYURI_CACHE_ROOTS": os.pathsep.join(str(root) for root in roots)} if roots else {}


def with_tracer(env: dict[str, str], library: str) -> None:
    """Preload the tracer in `env`, before the project's own preloads, and say what it skips."""
    existing = [entry for entry in env.get("LD_PRELOAD", "").replace(":", " ").split() if entry != library]
    env["LD_PRELOAD"] = " ".join([library, *existing])
    env["MAYURI_TRACER_SKIP"] = _python_folders()


@functools.cache
def _python_folders() -> str:
    """The interpreter's folders, which the recorded environment covers: never traced."""
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        folders.add(user_site)
    spellings = {spelling for folder in folders for spelling in (os.path.abspath(folder), os.path.realpath(folder))}
    return os.pathsep.join(sorted(spellings))


def closure_env(
    env: dict[str, str], closure_dir: Path, project_root: Path, exclude: list[Path], runs: Path | None = None
) -> dict[str, str]:
    """A copy of `env` under which Python processes record their closure into `closure_dir`.

    `runs`, the store's runs folder: what the job reads in other runs' folders
    (its upstreams') is recorded although the store is excluded.
    """
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
    if runs is not None:
        # Both spellings: the hook compares paths as the job spelled them.
        result[TRACE_RUNS_VAR] = os.pathsep.join(dict.fromkeys((os.path.abspath(runs), os.path.realpath(runs))))
    return result
