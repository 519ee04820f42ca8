"""Train the tiny adder on the training split; writes the model and reports the final loss."""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import mayuri  # noqa: E402
from model import Adder, load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = load(args.data)
    scale = max(max(a, b) for a, b, _ in rows) or 1.0
    model = Adder()
    rng = random.Random(args.seed)
    loss = 0.0
    for epoch in range(args.epochs):
        rng.shuffle(rows)
        loss = sum(model.step(a, b, c, args.lr, scale) for a, b, c in rows) / len(rows)
        print(f"epoch {epoch} loss {loss:.6f}")
    path = args.out / "model.json"
    model.save(path)
    mayuri.output("model", str(path))
    mayuri.output("loss", loss)
    mayuri.output("scale", scale)


if __name__ == "__main__":
    main()
