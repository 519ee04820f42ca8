"""Hugging Face `Trainer` integration: metrics, checkpoints and resume through Mayuri.

    trainer = Trainer(..., args=TrainingArguments(output_dir=str(mayuri.checkpoint_dir()), ...),
                      callbacks=[MayuriCallback()])
    trainer.train(resume_from_checkpoint=resume_checkpoint())

`MayuriCallback` logs every `on_log` dict at the Trainer's global step and
keeps the checkpoints the Trainer keeps as `checkpoint` artifacts: after each
save (and at the end of training) the store holds exactly the `checkpoint-N`
folders left on disk, so `save_total_limit` and `load_best_model_at_end`
(which keeps the best one) decide for both. Files are kept by reference
(hard links into the content-addressed store, read-only from then on)
where the filesystem allows, copied otherwise.
`resume_checkpoint()` finds, on a retried attempt or on a new run whose
interrupted predecessor saved checkpoints, the newest `checkpoint-N` there
(MAYURI_RESUME_FROM) for `trainer.train` (a callback runs after the Trainer
has already decided where to start, so it cannot choose).

Importing this module imports transformers; `mayuri` itself never does.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

import mayuri
from mayuri.job import NotInJob

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = _CHECKPOINT.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def resume_checkpoint() -> str | None:
    """The checkpoint to pass to `trainer.train(resume_from_checkpoint=...)`: None on a first attempt.

    MAYURI_RESUME_FROM may name a `checkpoint-N` folder itself or a folder
    holding several; the one with the highest N is taken.
    """
    source = mayuri.resume_from()
    if source is None:
        return None
    if _CHECKPOINT.match(source.name) and source.is_dir():
        return str(source)
    found = _checkpoints(source)
    return str(found[-1][1]) if found else None


def _numbers(logs: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in logs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


class MayuriCallback(TrainerCallback):  # type: ignore[misc]
    """Logs the Trainer's metrics into the current run and keeps its checkpoints as artifacts.

    `keep_checkpoints=False` records metrics only (checkpoints are copied into
    the store's blobs, deduplicated by content, which costs disk for big models).
    Outside a Mayuri run (no `mayuri run`, no `mayuri.init`) it does nothing.
    """

    def __init__(self, keep_checkpoints: bool = True) -> None:
        self.keep_checkpoints = keep_checkpoints
        self._active = False
        self._stored: set[str] = set()

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        try:
            mayuri.current_run()
        except NotInJob:
            self._active = False
            return
        self._active = state.is_world_process_zero
        if self._active and state.global_step == 0 and resume_checkpoint() is not None:
            sys.stderr.write(
                "mayuri: this attempt could resume from a checkpoint but starts at step 0; "
                "call trainer.train(resume_from_checkpoint=resume_checkpoint()).\n"
            )

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self._active and logs:
            values = _numbers(logs)
            if values:
                mayuri.log(values, step=state.global_step)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        self._sync(args)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        # At the end the Trainer may delete more (save_total_limit=1 with load_best_model_at_end).
        self._sync(args)

    def _sync(self, args: TrainingArguments) -> None:
        """Make the run's checkpoint artifacts the checkpoint folders the Trainer has kept on disk."""
        if not (self._active and self.keep_checkpoints):
            return
        from mayuri.executors.remote.spool import spool_removal, spooling
        from mayuri.store.artifact_records import remove_artifacts
        from mayuri.tracking.artifacts import process_store, save_artifact

        run = mayuri.current_run()
        on_disk = {f"checkpoints/{folder.name}": folder for _, folder in _checkpoints(Path(args.output_dir or "."))}
        for name, folder in on_disk.items():
            if name not in self._stored:
                save_artifact(run.store, run.id, folder, name, kind="checkpoint", link=True)
                self._stored.add(name)
        gone = sorted(self._stored - set(on_disk))
        if gone:
            if spooling():
                spool_removal(gone)
            else:
                remove_artifacts(process_store(run.store), run.id, gone)
            self._stored -= set(gone)
