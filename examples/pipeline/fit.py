"""Fit y = a*x + b by gradient descent; `--degree-of-shrinkage` pulls a towards 0 (ridge)."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import mayuri

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--ridge", type=float, required=True)
parser.add_argument("--steps", type=int, required=True)
args = parser.parse_args()

with open(args.data) as handle:
    rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(handle)]
a = b = 0.0
for _ in range(args.steps):
    grad_a = sum((a * x + b - y) * x for x, y in rows) / len(rows) + args.ridge * a
    grad_b = sum(a * x + b - y for x, y in rows) / len(rows)
    a, b = a - args.lr * grad_a, b - args.lr * grad_b
loss = sum((a * x + b - y) ** 2 for x, y in rows) / len(rows)
print(f"a={a:.3f} b={b:.3f} loss={loss:.4f}")
mayuri.output("slope", a)
mayuri.output("intercept", b)
mayuri.output("loss", loss)
