"""Make a synthetic dataset of additions `a+b=c`, written as text, split into train and test.

Every pair of numbers with `--digits` digits, shuffled by `--seed`; the test
split holds pairs never seen in training.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import mayuri


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-share", type=float, default=0.1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    top = 10**args.digits
    pairs = [(a, b) for a in range(top) for b in range(top)]
    random.Random(args.seed).shuffle(pairs)
    lines = [f"{a}+{b}={a + b}" for a, b in pairs]
    split = int(len(lines) * (1 - args.test_share))
    train, test = args.out / "train.txt", args.out / "test.txt"
    train.write_text("\n".join(lines[:split]) + "\n")
    test.write_text("\n".join(lines[split:]) + "\n")
    mayuri.output("train_file", str(train))
    mayuri.output("test_file", str(test))
    print(f"wrote {split} training and {len(lines) - split} test examples")


if __name__ == "__main__":
    main()
