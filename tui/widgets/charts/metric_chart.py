"""A line chart of one or more metric series (textual-plotext), several runs or keys overlaid.

It draws what it is given and reads nothing: series arrive already
downsampled (`metric_series(..., max_points=...)`), so a 100,000-point
metric costs a chart of a few hundred points. NaN and infinite values are
left out of the lines (plotext cannot place them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from textual_plotext import PlotextPlot

Series = tuple[Sequence[int], Sequence[float]]


def finite_points(steps: Sequence[int], values: Sequence[float]) -> tuple[list[int], list[float]]:
    """The points whose value is a finite number."""
    kept = [(s, v) for s, v in zip(steps, values, strict=True) if v is not None and math.isfinite(v)]
    return [s for s, _ in kept], [v for _, v in kept]


class MetricChart(PlotextPlot):
    """Lines named by label (a key, or a run and a key)."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 8; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.labels: list[str] = []
        """The lines now drawn (tests and the summary line read it)."""
        self.points = 0

    def show(self, series: Mapping[str, Series], title: str = "") -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.labels = []
        self.points = 0
        for label, (steps, values) in series.items():
            xs, ys = finite_points(steps, values)
            if not xs:
                continue
            plt.plot(xs, ys, label=label, marker="braille")
            self.labels.append(label)
            self.points += len(xs)
        plt.title(title if self.labels else f"{title} (no points)")
        plt.xlabel("step")
        self.refresh()
