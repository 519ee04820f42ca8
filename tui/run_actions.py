"""Cancel and forced rerun from the dashboard, each after a confirmation.

Both go through the `mayuri` command itself, in a subprocess: cancel runs
`mayuri cancel RUN` (the same core function the command line uses, without
the dashboard importing the scheduler), rerun starts `mayuri run FILE
[OVERRIDES] --force --only JOB` detached, so that the new scheduler outlives
the dashboard. FILE and OVERRIDES are those the run recorded (a run recorded
before Mayuri kept them is matched to a file by its experiment's name), plus
`JOB.KEY=VALUE` for each swept key, so that only the run's own point reruns.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from textual import work

from mayuri.store.browse_queries import RunListRow
from mayuri.store.queries import get_run
from mayuri.tui.screens.confirm_modal import ConfirmModal

ACTIVE = ("queued", "running")
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mayuri"}


def experiment_files(root: Path, experiment: str, skip: Path | None = None) -> list[Path]:
    """Experiment files under `root` whose top-level `name:` is `experiment`.

    For runs that do not record their file (made before Mayuri kept it).
    """
    pattern = re.compile(rf"^name:\s*['\"]?{re.escape(experiment)}['\"]?\s*(#.*)?$", re.MULTILINE)
    found = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                if entry.name not in _SKIP_DIRS and not entry.name.startswith(".") and entry != skip:
                    stack.append(entry)
            elif entry.suffix in (".yaml", ".yml"):
                try:
                    head = entry.read_text(encoding="utf-8", errors="replace")[:65536]
                except OSError:
                    continue
                if pattern.search(head):
                    found.append(entry)
    return found


def point_overrides(file: Path, job: str, overrides: list[str], params: dict[str, Any]) -> list[str]:
    """`JOB.KEY=VALUE` for each key the file or the run's overrides sweep, set to the run's own value.

    A forced rerun of one swept run must rerun that point only, not the
    whole sweep. A value that an override cannot carry (a string with a
    comma, a non-finite number) is left out: that key's sweep reruns whole.
    """
    from mayuri.errors import MayuriError
    from mayuri.experiment import parse_override
    from mayuri.experiment.parse import parse_experiment

    try:
        spec = parse_experiment(file)
        swept = set(spec.jobs[job].sweep) if job in spec.jobs else set()
        for text in overrides:
            override = parse_override(text, set(spec.jobs))
            if override.is_sweep and override.job in (None, job):
                swept.add(override.key)
    except MayuriError:
        return []  # the file no longer parses: the rerun itself reports why
    pins = []
    for key in sorted(swept):
        value: Any = params
        for part in key.split("."):
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        encoded = _as_override_value(value)
        # A comma outside brackets would read as a sweep.
        if encoded is not None and ("," not in encoded or encoded[0] in "[{"):
            pins.append(f"{job}.{key}={encoded}")
    return pins


_MISSING = object()


def _as_override_value(value: Any) -> str | None:
    """`value` as YAML (JSON is YAML) that an override reads back equal; None when there is none."""
    if value is _MISSING:
        return None
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        return None


def mayuri_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mayuri", *args]


class RunActions:
    """Mixin for screens that show runs: `x` cancels and `R` reruns the current run."""

    app: Any

    def current_run(self) -> RunListRow | None:
        raise NotImplementedError

    def action_cancel_run(self) -> None:
        run = self.current_run()
        if run is None:
            return
        if run.status not in ACTIVE:
            self.app.notify(f"run {run.id[:8]} is {run.status}; only queued or running runs can be "
                            "cancelled.", title="cancel")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_in_background(run.id)

        self.app.push_screen(
            ConfirmModal(f"Cancel run {run.id[:8]} ({run.experiment} / {run.job}, {run.status})?",
                         "Its process tree gets SIGTERM, then SIGKILL after the grace period."),
            answered,
        )

    @work(thread=True, group="actions", exit_on_error=False)
    def cancel_in_background(self, run_id: str) -> None:
        root = self.app.settings.root
        done = subprocess.run(mayuri_command("cancel", run_id), cwd=root, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
        text = (done.stderr or done.stdout).strip().splitlines()
        if done.returncode == 0:
            self.app.notify(text[-1] if text else f"cancelled {run_id[:8]}", title="cancel")
        else:
            self.app.notify(text[-1] if text else f"exit code {done.returncode}", title="cancel failed",
                            severity="error")

    def action_rerun(self) -> None:
        run = self.current_run()
        if run is not None:
            self.find_experiment_file(run)

    @work(thread=True, group="actions", exit_on_error=False)
    def find_experiment_file(self, run: RunListRow) -> None:
        settings = self.app.settings
        recorded = get_run(self.app.store, run.id)
        if recorded.source is not None:
            source = settings.root / recorded.source
            files = [source] if source.is_file() else []
            overrides = recorded.overrides
        else:
            files = experiment_files(settings.root, run.experiment, skip=settings.store.path)
            overrides = []
        if len(files) == 1:
            overrides = [*overrides, *point_overrides(files[0], run.job, overrides, recorded.params)]
        self.app.call_from_thread(self._confirm_rerun, run, files, recorded.source, overrides)

    def _confirm_rerun(self, run: RunListRow, files: list[Path], source: str | None, overrides: list[str]) -> None:
        if source is not None and not files:
            self.app.notify(f"the experiment file of run {run.id[:8]}, {source}, is gone.", title="rerun",
                            severity="error")
            return
        if len(files) != 1:
            found = ", ".join(str(f) for f in files) or "none"
            self.app.notify(f"cannot tell which experiment file '{run.experiment}' comes from "
                            f"(files with that name: {found}).", title="rerun", severity="error")
            return
        root = self.app.settings.root
        file = source if source is not None else str(files[0].relative_to(root))
        args = ["run", file, *overrides, "--force", "--only", run.job]

        def answered(yes: bool | None) -> None:
            if yes:
                subprocess.Popen(mayuri_command(*args), cwd=root, start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
                self.app.notify(f"started: mayuri {' '.join(args)}", title="rerun")

        self.app.push_screen(ConfirmModal(f"Rerun job {run.job} of {run.experiment}?",
                                          "mayuri " + " ".join(args)), answered)
