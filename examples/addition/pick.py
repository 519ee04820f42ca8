"""Name the best of several trained models (the lowest final training loss)."""

from __future__ import annotations

import json
import sys

import mayuri


def main() -> None:
    models, losses = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    best = min(range(len(models)), key=lambda i: losses[i])
    for model, loss in zip(models, losses, strict=True):
        print(f"{'*' if model == models[best] else ' '} loss {loss:.6f}  {model}")
    mayuri.output("best_model", models[best])
    mayuri.output("best_loss", losses[best])


if __name__ == "__main__":
    main()
