"""Chart series computed from cycle records, and the pyqtgraph plots that show them.

The series use the same cycle-time definition as ``sorter.metrics`` (motion plus perception and decision),
so the live chart, the history chart and ``sorter runs show`` agree.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyqtgraph as pg

from sorter.metrics import cycle_seconds
from sorter.runlog import CycleRecord

SECONDS_PER_HOUR = 3600.0


class PicksPerHourSeries:
    """Running picks per hour against cycle time, fed one cycle at a time."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.picks = 0
        self.minutes: list[float] = []
        self.rate: list[float] = []

    def add(self, cycle: CycleRecord) -> None:
        self.seconds += cycle_seconds(cycle)
        if cycle.executed and cycle.action_kind == "grasp" and cycle.delivered:
            self.picks += 1
        if self.seconds > 0:
            self.minutes.append(self.seconds / 60.0)
            self.rate.append(self.picks * SECONDS_PER_HOUR / self.seconds)

    def extend(self, cycles: Iterable[CycleRecord]) -> PicksPerHourSeries:
        for c in cycles:
            self.add(c)
        return self


def rolling_success(cycles: list[CycleRecord], window: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Grasp success over the last ``window`` grasps, against grasp number."""
    held = np.array([c.grasp_held for c in cycles if c.executed and c.action_kind == "grasp"], dtype=float)
    if held.size == 0:
        return np.zeros(0), np.zeros(0)
    csum = np.concatenate([[0.0], np.cumsum(held)])
    idx = np.arange(1, held.size + 1)
    lo = np.maximum(idx - window, 0)
    return idx.astype(float), (csum[idx] - csum[lo]) / (idx - lo)


def make_plot(title: str, x_label: str, y_label: str) -> pg.PlotWidget:
    """A plain white plot with labelled axes."""
    plot = pg.PlotWidget(background="w")
    plot.setTitle(title, color="#333", size="10pt")
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.3)
    for axis in ("bottom", "left"):
        plot.getAxis(axis).enableAutoSIPrefix(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.setMinimumHeight(140)
    return plot


PEN = pg.mkPen("#1565c0", width=2)
PEN_ALT = pg.mkPen("#2e7d32", width=2)
