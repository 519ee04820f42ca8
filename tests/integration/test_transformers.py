"""The Hugging Face integration under `mayuri run`: a tiny GPT-2 built from a config (no download).

The job's first attempt trains 6 steps, saving checkpoints, and then fails;
the scheduler retries it (`retry: {failed: 1}`) and tells the second attempt
where the first one's checkpoints are (MAYURI_RESUME_FROM), so it resumes
from the newest and logs only the later steps.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Project

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

TRAIN = """
import argparse
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import mayuri
from mayuri.integrations.transformers import MayuriCallback, resume_checkpoint

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, required=True)
args = parser.parse_args()
# The retry trains further than the first attempt got.
steps = args.steps if mayuri.current_run().attempt == 1 else args.steps + 4
torch.manual_seed(0)
text = b"1+1=2 2+2=4 3+3=6 4+4=8 " * 40
rows = [torch.tensor(list(text[i:i + 16])) for i in range(0, len(text) - 16, 16)]


class Bytes(torch.utils.data.Dataset):
    def __len__(self):
        return len(rows)

    def __getitem__(self, index):
        return {"input_ids": rows[index], "labels": rows[index]}


model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=256, n_positions=16))
training = TrainingArguments(
    output_dir=str(mayuri.checkpoint_dir()), max_steps=steps, per_device_train_batch_size=8,
    logging_steps=2, save_steps=3, report_to=[], use_cpu=True, learning_rate=1e-3,
    disable_tqdm=True, save_only_model=False,
)
trainer = Trainer(model=model, args=training, train_dataset=Bytes(), callbacks=[MayuriCallback()])
trainer.train(resume_from_checkpoint=resume_checkpoint())
mayuri.output("steps", trainer.state.global_step)
if mayuri.current_run().attempt == 1:
    raise SystemExit("first attempt: fail after saving checkpoints, to be retried")
"""


def _metric_steps(db: Path, run_id: str, key: str) -> list[int]:
    with sqlite3.connect(db) as con:
        return [s for (s,) in con.execute(
            "SELECT step FROM metric JOIN metric_key k ON k.id = key_id WHERE run_id = ? AND k.name = ? "
            "ORDER BY step", (run_id, key))]


@pytest.mark.slow
def test_trainer_logs_checkpoints_and_resumes_on_retry(project: Project) -> None:
    project.write("train_hf.py", TRAIN)
    project.write("exp.yaml", """
        name: hf
        params: {steps: 6}
        jobs:
          train:
            run: python train_hf.py --steps ${steps}
            retry: {failed: 1}
    """)
    done = project.mayuri("run", "exp.yaml", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = project.runs()
    # Attempt 1 logged 2, 4, 6; attempt 2 resumed from checkpoint-6 and logged 8, 10.
    assert _metric_steps(project.db, run["id"], "loss") == [2, 4, 6, 8, 10]
    assert _metric_steps(project.db, run["id"], "train_loss") == [6, 10]
    with sqlite3.connect(project.db) as con:
        kept = con.execute("SELECT name, kind FROM artifact WHERE run_id = ? ORDER BY name",
                           (run["id"],)).fetchall()
        attempts = con.execute("SELECT number, status FROM attempt WHERE run_id = ? ORDER BY number",
                               (run["id"],)).fetchall()
    assert [a[0] for a in attempts] == [1, 2] and attempts[-1][1] == "succeeded"
    assert kept == [(f"checkpoints/checkpoint-{n}", "checkpoint") for n in (10, 3, 6, 9)]
    outputs = json.loads((project.root / ".mayuri" / "runs" / run["id"] / "outputs.json").read_text())
    assert outputs["steps"] == 10


LIMITED = TRAIN.replace("save_steps=3,", "save_steps=2, save_total_limit=2,").replace(
    'if mayuri.current_run().attempt == 1:\n    raise SystemExit("first attempt: fail after saving checkpoints, to be retried")\n', "")


@pytest.mark.slow
def test_save_total_limit_keeps_two_checkpoints_in_the_store_by_reference(project: Project) -> None:
    project.write("train_hf.py", LIMITED)
    project.write("exp.yaml", """
        name: hf
        jobs:
          train:
            run: python train_hf.py --steps 8
    """)
    done = project.mayuri("run", "exp.yaml", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = project.runs()
    with sqlite3.connect(project.db) as con:
        kept = [name for (name,) in con.execute("SELECT name FROM artifact WHERE run_id = ? ORDER BY name",
                                                (run["id"],))]
        files = con.execute("SELECT relpath, sha512 FROM artifact_file WHERE run_id = ? AND name = ?",
                            (run["id"], "checkpoints/checkpoint-8")).fetchall()
    # Saved at 2, 4, 6, 8; the Trainer kept the last two on disk, and so does the store.
    assert kept == ["checkpoints/checkpoint-6", "checkpoints/checkpoint-8"]
    folder = project.root / ".mayuri" / "runs" / run["id"] / "checkpoints" / "1" / "checkpoint-8"
    assert sorted(p.name for p in (folder.parent).iterdir()) == ["checkpoint-6", "checkpoint-8"]
    blobs = project.root / ".mayuri" / "blobs"
    linked = [rel for rel, sha in files
              if (folder / rel).stat().st_ino == next(blobs.glob(f"*/{sha[2:]}*")).stat().st_ino]
    # The weights and optimizer state change at every step: their blobs are the checkpoint's own files
    # (a file whose content an earlier checkpoint had already stored, like config.json, is simply shared).
    assert {"model.safetensors", "optimizer.pt"} <= set(linked), "kept by reference, not copied"


SLOW_TRAIN = TRAIN.replace(
    "trainer = Trainer(", """import os, time
from transformers import TrainerCallback


class Pace(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(float(os.environ.get("STEP_DELAY", "0")))


trainer = Trainer(""").replace("callbacks=[MayuriCallback()]", "callbacks=[MayuriCallback(), Pace()]").replace(
    'if mayuri.current_run().attempt == 1:\n    raise SystemExit("first attempt: fail after saving checkpoints, to be retried")\n', "")


@pytest.mark.slow
def test_a_cancelled_trainer_resumes_in_the_next_run_with_no_change(project: Project) -> None:
    import subprocess
    import sys
    import time

    project.write("train_hf.py", SLOW_TRAIN)
    project.write("exp.yaml", """
        name: hf
        jobs:
          train:
            run: python train_hf.py --steps 12
    """)
    env = dict(__import__("os").environ, STEP_DELAY="0.5", COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "mayuri", "run", "exp.yaml"], cwd=project.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    runs = project.root / ".mayuri" / "runs"
    deadline = time.monotonic() + 240
    while not list(runs.glob("*/checkpoints/1/checkpoint-3")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert project.mayuri("cancel", "--all").returncode == 0
    proc.communicate(timeout=120)
    (first,) = project.runs()
    assert first["status"] == "cancelled"
    done = project.mayuri("run", "exp.yaml", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    second = next(r for r in project.runs() if r["id"] != first["id"])
    with sqlite3.connect(project.db) as con:
        resumed = con.execute("SELECT resumed_from, resumed_step FROM attempt WHERE run_id = ?",
                              (second["id"],)).fetchone()
    assert resumed[0] == first["id"] and resumed[1] >= 3
    # Resumed from checkpoint-N: the second run logs only the steps after it.
    assert min(_metric_steps(project.db, second["id"], "loss")) > resumed[1]
