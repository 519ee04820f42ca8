"""Name the best of the trained models: the highest validation accuracy."""

from __future__ import annotations

import json
import sys

import mayuri


def main() -> None:
    models, scores = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    best = max(range(len(models)), key=lambda i: scores[i])
    for index, (model, score) in enumerate(zip(models, scores, strict=True)):
        print(f"{'*' if index == best else ' '} validation accuracy {score:.3f}  {model}")
    mayuri.output("best_model", models[best])
    mayuri.output("best_val_accuracy", scores[best])


if __name__ == "__main__":
    main()
