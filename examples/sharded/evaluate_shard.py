"""One shard of the held-out evaluation: the adder's answers on this shard's files of sums.

Mayuri gives each shard its share of `heldout/*.txt` (`mayuri.shard_files()`,
by a hash of each file's path); the job reports how many sums it got right
and which it got wrong, and the test's `reduce` combines the shards.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "addition"))

from model import Adder, answer, read_examples

import mayuri


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--digits", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = Adder.load(args.model)
    index, count = mayuri.shard()
    correct, total, wrong = 0, 0, []
    for path in mayuri.shard_files():
        examples, start = read_examples(path, args.digits)
        right = (answer(model, examples, start) == examples[:, start:]).all(dim=1)
        lines = path.read_text().splitlines()
        correct += int(right.sum())
        total += len(lines)
        wrong += [line for line, ok in zip(lines, right.tolist(), strict=True) if not ok]
    print(f"shard {index} of {count}: {correct} of {total} sums right")
    mayuri.output("accuracy", correct / total if total else 0.0)
    mayuri.output("n", total)
    mayuri.output("correct", correct)
    mayuri.output("wrong", wrong)


if __name__ == "__main__":
    main()
