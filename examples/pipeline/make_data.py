"""Make noisy samples of y = 3x + 1 and write them as CSV."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import mayuri

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, required=True)
parser.add_argument("--noise", type=float, required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()

rng = random.Random(args.seed)
path = args.out / "samples.csv"
with open(path, "w") as handle:
    handle.write("x,y\n")
    for _ in range(args.n):
        x = rng.uniform(-1, 1)
        handle.write(f"{x},{3 * x + 1 + rng.gauss(0, args.noise)}\n")
mayuri.output("samples", str(path))
print(f"wrote {args.n} samples to {path}")
