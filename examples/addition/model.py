"""A tiny model of addition: a linear map from the two operands to their sum, trained by SGD."""

from __future__ import annotations

import json
from pathlib import Path


def parse(line: str) -> tuple[float, float, float]:
    left, total = line.split("=")
    a, b = left.split("+")
    return float(a), float(b), float(total)


def load(path: Path) -> list[tuple[float, float, float]]:
    return [parse(line) for line in path.read_text().splitlines() if line]


class Adder:
    def __init__(self, weights: list[float] | None = None) -> None:
        self.weights = weights or [0.0, 0.0, 0.0]

    def predict(self, a: float, b: float, scale: float) -> float:
        w1, w2, bias = self.weights
        return (w1 * a / scale + w2 * b / scale + bias) * scale

    def step(self, a: float, b: float, target: float, lr: float, scale: float) -> float:
        error = self.predict(a, b, scale) / scale - target / scale
        self.weights[0] -= lr * error * a / scale
        self.weights[1] -= lr * error * b / scale
        self.weights[2] -= lr * error
        return error * error

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"weights": self.weights}))

    @classmethod
    def open(cls, path: Path) -> Adder:
        return cls(json.loads(path.read_text())["weights"])
