"""Event-loop latency probe: a precise timer that records how late each of its ticks fires.

A late tick means the GUI thread was busy (or starved of the GIL by the worker) for that long, which is
what an operator feels as a sluggish button. Used by ``sorter-gui --measure-latency``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from PyQt6.QtCore import QObject, Qt, QTimer

PROBE_INTERVAL_MS = 10


@dataclass(frozen=True)
class LatencyReport:
    """Lateness of the probe's ticks in milliseconds."""

    samples: int
    median_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    over_50ms: int  # ticks later than 50 ms

    def __str__(self) -> str:
        return (f"event-loop latency over {self.samples} ticks: median {self.median_ms:.1f} ms, "
                f"p95 {self.p95_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms, "
                f"{self.over_50ms} ticks over 50 ms")


class LatencyProbe(QObject):
    """Ticks every ``interval_ms`` on the GUI thread and records how late each tick was."""

    def __init__(self, interval_ms: int = PROBE_INTERVAL_MS, parent: QObject | None = None):
        super().__init__(parent)
        self.interval_s = interval_ms / 1000.0
        self.late_ms: list[float] = []
        self._last = 0.0
        self._timer = QTimer(self, interval=interval_ms)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        self.late_ms.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.late_ms.append(max(0.0, (now - self._last - self.interval_s) * 1000.0))
        self._last = now

    def report(self) -> LatencyReport:
        values = sorted(self.late_ms) or [0.0]

        def pct(q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))]

        over = sum(1 for v in self.late_ms if v > 50.0)
        return LatencyReport(len(self.late_ms), statistics.median(values), pct(0.95), pct(0.99), values[-1],
                             over)
