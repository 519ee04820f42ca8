"""Accuracy of a trained adder on the test split: the share of sums it gets exactly right."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from model import Adder, accuracy, read_examples

import mayuri


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--digits", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = Adder.load(args.model)
    examples, start = read_examples(args.data, args.digits)
    score = accuracy(model, examples, start)
    print(f"accuracy {score:.3f} on {len(examples)} unseen sums")
    mayuri.log(step=0, accuracy=score)
    mayuri.output("accuracy", score)


if __name__ == "__main__":
    main()
