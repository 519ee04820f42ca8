"""Train the tiny transformer on the training split; logs loss and validation accuracy to Mayuri."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from model import Adder, Config, accuracy, read_examples

import mayuri


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    # One thread each: the sweep's points run side by side on a small machine.
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    examples, start = read_examples(args.data, args.digits)
    held_out = len(examples) // 10
    train, valid = examples[held_out:], examples[:held_out]
    model = Adder(Config(max_len=examples.shape[1]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps,
                                                   pct_start=0.1)
    for step in range(1, args.steps + 1):
        model.train()
        batch = train[torch.randint(0, len(train), (args.batch_size,))]
        logits = model(batch[:, :-1])
        # Only the answer is learned: the question is given.
        loss = torch.nn.functional.cross_entropy(
            logits[:, start - 1:].reshape(-1, logits.shape[-1]), batch[:, start:].reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 10 == 0:
            mayuri.log(step=step, loss=loss.item(), lr=schedule.get_last_lr()[0])
        if step % 200 == 0 or step == args.steps:
            mayuri.log(step=step, val_accuracy=accuracy(model, valid, start))
    score = accuracy(model, valid, start)
    print(f"lr {args.lr:g}: loss {loss.item():.4f}, validation accuracy {score:.3f}")
    folder = args.out / "model"
    model.save(folder)
    mayuri.artifact(folder, name="model")
    mayuri.output("model", str(folder))
    mayuri.output("val_accuracy", score)


if __name__ == "__main__":
    main()
