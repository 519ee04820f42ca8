"""Make a synthetic dataset of additions `a+b=c`, written as text, split into train and test."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import mayuri


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    top = 10**args.digits
    lines = [f"{a}+{b}={a + b}" for a, b in ((rng.randrange(top), rng.randrange(top)) for _ in range(args.count))]
    split = int(len(lines) * 0.9)
    train, test = args.out / "train.txt", args.out / "test.txt"
    train.write_text("\n".join(lines[:split]) + "\n")
    test.write_text("\n".join(lines[split:]) + "\n")
    mayuri.output("train_file", str(train))
    mayuri.output("test_file", str(test))
    print(f"wrote {split} training and {len(lines) - split} test examples")


if __name__ == "__main__":
    main()
