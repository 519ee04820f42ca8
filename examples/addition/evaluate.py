"""Accuracy of a trained adder on the test split: the share of sums it gets exactly right."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import mayuri  # noqa: E402
from model import Adder, load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--scale", type=float, required=True)
    args = parser.parse_args()
    model = Adder.open(args.model)
    rows = load(args.data)
    right = sum(round(model.predict(a, b, args.scale)) == c for a, b, c in rows)
    accuracy = right / len(rows)
    print(f"accuracy {accuracy:.3f} on {len(rows)} examples")
    mayuri.output("accuracy", accuracy)


if __name__ == "__main__":
    main()
