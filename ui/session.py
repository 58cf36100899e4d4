"""One sorting run driven from the GUI: the cell and the pick loop live in a worker thread, the GUI polls
the loop's non-blocking subscription with a timer and re-emits what it finds as Qt signals.

Nothing here blocks the GUI thread: opening the cell (building a MuJoCo scene, loading a model) happens in
the worker too, and commands (pause, stop, acknowledge) only queue requests with the loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from sorter.errors import SorterError
from sorter.loop import (
    AlarmAcknowledged,
    AlarmRaised,
    BatchEnded,
    BatchStarted,
    CycleDone,
    FrameOverlay,
    LoopOptions,
    RunEnded,
    RunLimits,
    StateChanged,
)
from sorter.recipe import Recipe
from ui.overlays import ViewGeometry

log = logging.getLogger(__name__)

POLL_MS = 30  # how often the GUI drains the loop's queue; well inside the 50 ms latency budget


@dataclass(frozen=True)
class RunRequest:
    """Everything a run needs; ``simulated`` forces the simulated cell (rehearsals)."""

    recipe: Recipe
    db_path: Path
    limits: RunLimits = RunLimits()
    options: LoopOptions = field(default_factory=LoopOptions)
    simulated: bool = False


@dataclass
class Prepared:
    """What a builder hands back: the loop ready to run, the open cell and how to close it."""

    loop: Any
    cell: Any
    close: Callable[[], None]
    view: ViewGeometry | None = None


Builder = Callable[[RunRequest], Prepared]


class RunSession(QObject):
    """A run in a worker thread; signals carry the loop's events to the GUI thread."""

    starting = pyqtSignal()
    state_changed = pyqtSignal(object)
    batch_started = pyqtSignal(object)
    batch_ended = pyqtSignal(object)
    cycle_done = pyqtSignal(object)
    frame = pyqtSignal(object)
    alarm_raised = pyqtSignal(object)
    alarm_acknowledged = pyqtSignal(object)
    run_ended = pyqtSignal(object)
    failed = pyqtSignal(str)
    finished = pyqtSignal()

    def __init__(self, request: RunRequest, builder: Builder | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.request = request
        self._builder = builder or default_builder
        self._lock = threading.Lock()
        self._notes: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._prepared: Prepared | None = None
        self._subscription = None
        self._stop_reason = ""
        self._done = False
        self.run_id: int | None = None
        self.end_reason = ""
        self.error = ""
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._signals = {
            StateChanged: self.state_changed, BatchStarted: self.batch_started, BatchEnded: self.batch_ended,
            CycleDone: self.cycle_done, AlarmRaised: self.alarm_raised,
            AlarmAcknowledged: self.alarm_acknowledged, RunEnded: self.run_ended,
        }

    @property
    def active(self) -> bool:
        """True from ``start`` until the worker has closed the cell."""
        return self._thread is not None and not self._done

    @property
    def loop(self) -> Any:
        with self._lock:
            return self._prepared.loop if self._prepared else None

    @property
    def cell(self) -> Any:
        with self._lock:
            return self._prepared.cell if self._prepared else None

    @property
    def view(self) -> ViewGeometry | None:
        with self._lock:
            return self._prepared.view if self._prepared else None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a session runs once; make a new one")
        self._thread = threading.Thread(target=self._work, name="gui-run", daemon=True)
        self._thread.start()
        self._timer.start()
        self.starting.emit()

    def pause(self) -> None:
        self._command("pause")

    def resume(self) -> None:
        self._command("resume")

    def acknowledge(self, alarm_id: int) -> None:
        self._command("acknowledge", alarm_id)

    def next_batch(self) -> None:
        self._command("next_batch")

    def stop(self, reason: str = "stopped by operator") -> None:
        """Ask the run to end after the cycle in flight; ``reason`` goes to the run log.

        A stop that comes while the cell is still opening cancels the run before the robot moves.
        """
        with self._lock:
            if not self._stop_reason:
                self._stop_reason = reason
            loop = self._prepared.loop if self._prepared else None
        if loop is not None:
            loop.stop(reason)

    def wait(self, timeout: float | None = None) -> bool:
        """Join the worker (tests and shutdown only; the GUI itself waits on ``finished``)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _command(self, name: str, *args: object) -> None:
        loop = self.loop
        if loop is not None:
            getattr(loop, name)(*args)

    def _work(self) -> None:
        try:
            preload(self.request.recipe.policy.kind != "heuristic")
            prepared = self._builder(self.request)
        except SorterError as exc:
            self._notes.put(("failed", str(exc)))
            self._notes.put(("finished", None))
            return
        except Exception as exc:
            log.exception("could not prepare the run")
            self._notes.put(("failed", f"could not prepare the run: {type(exc).__name__}: {exc}"))
            self._notes.put(("finished", None))
            return
        self._run(prepared)

    def _run(self, prepared: Prepared) -> None:
        subscription = prepared.loop.subscribe()
        with self._lock:
            self._prepared = prepared
            self._subscription = subscription
            stopped_early = bool(self._stop_reason)
        try:
            if not stopped_early:
                prepared.loop.run()
        except Exception as exc:
            log.exception("the pick loop ended with an error")
            self._notes.put(("failed", f"the run ended with an error: {type(exc).__name__}: {exc}"))
        finally:
            try:
                prepared.close()
            except Exception as exc:
                log.exception("closing the cell failed")
                self._notes.put(("failed", f"closing the cell failed: {exc}"))
            self._notes.put(("finished", None))

    def poll(self) -> None:
        """Drain the loop's queue and re-emit; of several queued frames only the newest is shown."""
        subscription = self._subscription
        if subscription is not None:
            self._dispatch(subscription.drain())
        self._handle_notes()

    def _dispatch(self, events: list) -> None:
        frame = None
        for event in events:
            if isinstance(event, FrameOverlay):
                frame = event
                continue
            if isinstance(event, RunEnded):
                self.run_id, self.end_reason = event.run_id, event.reason
            signal = self._signals.get(type(event))
            if signal is not None:
                signal.emit(event)
        if frame is not None:
            self.frame.emit(frame)

    def _handle_notes(self) -> None:
        while True:
            try:
                kind, payload = self._notes.get_nowait()
            except queue.Empty:
                return
            if kind == "failed":
                self.error = str(payload)
                self.failed.emit(self.error)
            elif kind == "finished":
                if self._subscription is not None:
                    self._dispatch(self._subscription.drain())
                self._timer.stop()
                self._done = True
                self.finished.emit()


def preload(learned: bool) -> None:
    from ui.wiring import preload as load

    load(learned)


def default_builder(request: RunRequest) -> Prepared:
    """Open the recipe's cell (the simulated one unless it names hardware) and build its pick loop."""
    from ui.wiring import build_run

    return build_run(request)
