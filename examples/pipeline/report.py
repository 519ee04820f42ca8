"""Gather step: given every fit's loss and slope, name the best one."""

from __future__ import annotations

import json
import sys

import mayuri

losses, slopes = json.loads(sys.argv[1]), json.loads(sys.argv[2])
best = min(range(len(losses)), key=losses.__getitem__)
for i, (loss, slope) in enumerate(zip(losses, slopes, strict=True)):
    print(f"{'*' if i == best else ' '} fit {i}: loss {loss:.4f} slope {slope:.3f}")
mayuri.output("best_loss", losses[best])
mayuri.output("best_slope", slopes[best])
