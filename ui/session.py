"""One sorting run driven from the GUI. The pick loop and its cell run in a separate worker process; the
GUI process reads the loop's events on a reader thread and re-emits them as Qt signals from a timer.

Why a process and not only a thread: the simulated cell computes flat out, and the parts of it that hold
Python's interpreter lock (DBSCAN, array work, physics loops) made the GUI thread wait for the lock: with
the loop in a thread the event loop was late by up to ~100 ms on a loaded 2-core machine, with the loop in
a process under 50 ms (``sorter-gui --measure-latency``). The process also keeps a crash in native code
(MuJoCo, a vendor SDK) away from the operator's window, and the worker stops its run cleanly, with the
reason in the run log, if the GUI process disappears.

Inside the worker the loop runs in the main thread, a command thread applies the GUI's requests (pause,
resume, stop, acknowledge, next batch, fault injection on the simulated cell) through the loop's
thread-safe command API, and a forwarder thread sends the loop's events back. Nothing here blocks the GUI.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import signal
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

POLL_MS = 30  # how often the GUI drains the inbox; well inside the 50 ms latency budget
FORWARD_WAIT_S = 0.1  # the worker's forwarder waits this long for an event before checking for the end
PARENT_GONE = "operator application closed unexpectedly"
LOOP_COMMANDS = {"pause": "pause", "resume": "resume", "stop": "stop", "acknowledge": "acknowledge",
                 "next_batch": "next_batch"}
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: never fork a process that runs Qt


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


Builder = Callable[[RunRequest], Prepared]  # must be a module-level function: it travels to the worker


class RunSession(QObject):
    """A run in a worker process; signals carry the loop's events to the GUI thread."""

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
        self._inbox: queue.Queue = queue.Queue()
        self._process = None
        self._conn = None
        self._done = False
        self.view: ViewGeometry | None = None
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
        """True from ``start`` until the worker has closed the cell and ended."""
        return self._process is not None and not self._done

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("a session runs once; make a new one")
        self._conn, child_conn = SPAWN.Pipe()
        self._process = SPAWN.Process(target=run_worker, args=(child_conn, self.request, self._builder),
                                      name="sorter-run")
        self._process.start()
        child_conn.close()
        threading.Thread(target=self._read, name="gui-run-reader", daemon=True).start()
        self._timer.start()
        self.starting.emit()

    def pause(self) -> None:
        self._send("pause")

    def resume(self) -> None:
        self._send("resume")

    def acknowledge(self, alarm_id: int) -> None:
        self._send("acknowledge", alarm_id)

    def next_batch(self) -> None:
        self._send("next_batch")

    def stop(self, reason: str = "stopped by operator") -> None:
        """End the run after the cycle in flight; ``reason`` goes to the run log.

        A stop that comes while the cell is still opening cancels the run before the robot moves.
        """
        self._send("stop", reason)

    def inject_fault(self, name: str, value: object = True) -> None:
        """Set one of the simulated cell's ``faults`` (e.g. protective_stop_next_action) for rehearsals."""
        self._send("fault", name, value)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end (tests and shutdown; the GUI itself waits on ``finished``)."""
        if self._process is not None:
            self._process.join(timeout)
        return self._process is None or not self._process.is_alive()

    def _send(self, *message: object) -> None:
        if self._conn is not None and not self._done:
            try:
                self._conn.send(message)
            except (OSError, ValueError):
                log.warning("the run worker is gone; %s not delivered", message[0])

    def _read(self) -> None:
        """Reader thread: move the worker's messages to the inbox until its end of the pipe closes."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            self._inbox.put(message)
        self._process.join()
        code = self._process.exitcode
        if code:
            self._inbox.put(("failed", f"the run worker ended unexpectedly (exit code {code}); the run log "
                                       "keeps every cycle it finished"))
        self._inbox.put(("finished", None))

    def poll(self) -> None:
        """Drain the inbox and re-emit; of several queued frames only the newest is shown."""
        frame = None
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "event" and isinstance(payload, FrameOverlay):
                frame = payload
            elif kind == "event":
                self._emit(payload)
            elif kind == "view":
                self.view = payload
            elif kind == "failed":
                self.error = str(payload)
                self.failed.emit(self.error)
            elif kind == "finished":
                self._finish(frame)
                return
        if frame is not None:
            self.frame.emit(frame)

    def _emit(self, event: object) -> None:
        if isinstance(event, RunEnded):
            self.run_id, self.end_reason = event.run_id, event.reason
        signal_ = self._signals.get(type(event))
        if signal_ is not None:
            signal_.emit(event)

    def _finish(self, frame: FrameOverlay | None) -> None:
        if frame is not None:
            self.frame.emit(frame)
        self._timer.stop()
        self._conn.close()
        self._done = True
        self.finished.emit()


def default_builder(request: RunRequest) -> Prepared:
    """Open the recipe's cell (the simulated one unless it names hardware) and build its pick loop."""
    from ui.wiring import build_run

    return build_run(request)


# ---------------------------------------------------------------------------------------------- worker


def run_worker(conn, request: RunRequest, builder: Builder) -> None:
    """Entry point of the worker process: build the run, serve the GUI's commands, forward events."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the GUI, which stops the run cleanly
    link = _WorkerLink(conn)
    threading.Thread(target=link.serve_commands, name="gui-commands", daemon=True).start()
    try:
        from ui.wiring import preload

        preload(request.recipe.policy.kind != "heuristic")
        prepared = builder(request)
    except SorterError as exc:
        link.send(("failed", str(exc)))
        return
    except Exception as exc:
        log.exception("could not prepare the run")
        link.send(("failed", f"could not prepare the run: {type(exc).__name__}: {exc}"))
        return
    try:
        link.run(prepared)
    finally:
        try:
            prepared.close()
        except Exception as exc:
            log.exception("closing the cell failed")
            link.send(("failed", f"closing the cell failed: {exc}"))
        conn.close()


class _WorkerLink:
    """The worker's side of the pipe: commands in, events out."""

    def __init__(self, conn):
        self.conn = conn
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._prepared: Prepared | None = None
        self._stop_reason = ""

    def send(self, message: tuple) -> None:
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self.conn.send(message)

    def serve_commands(self) -> None:
        """Apply the GUI's requests; if the GUI process goes away, stop the run with that reason."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                self._apply(("stop", PARENT_GONE))
                return
            self._apply(message)

    def _apply(self, message: tuple) -> None:
        name, *args = message
        with self._lock:
            prepared = self._prepared
            if name == "stop" and not self._stop_reason:
                self._stop_reason = str(args[0])
        if name == "fault":
            self._inject(prepared, *args)
        elif prepared is not None and name in LOOP_COMMANDS:
            getattr(prepared.loop, LOOP_COMMANDS[name])(*args)

    def _inject(self, prepared: Prepared | None, name: str, value: object) -> None:
        sim = getattr(prepared.cell, "sim", None) if prepared is not None else None
        if sim is None or not hasattr(sim.faults, name):
            self.send(("failed", f"fault '{name}' can be injected only into a running simulated cell "
                                 "(see SimFaults for the names)"))
            return
        setattr(sim.faults, name, value)

    def run(self, prepared: Prepared) -> None:
        """Run the loop in this thread while a forwarder sends its events; a stop before start cancels."""
        subscription = prepared.loop.subscribe()
        with self._lock:
            self._prepared = prepared
            cancelled = bool(self._stop_reason)
        self.send(("view", prepared.view))
        if cancelled:
            return
        done = threading.Event()
        forwarder = threading.Thread(target=self._forward, args=(subscription, done), name="gui-events")
        forwarder.start()
        try:
            prepared.loop.run()
        except Exception as exc:
            log.exception("the pick loop ended with an error")
            self.send(("failed", f"the run ended with an error: {type(exc).__name__}: {exc}"))
        finally:
            done.set()
            forwarder.join()

    def _forward(self, subscription, done: threading.Event) -> None:
        while not done.is_set():
            event = subscription.get(timeout=FORWARD_WAIT_S)
            if event is not None:
                self.send(("event", event))
        for event in subscription.drain():
            self.send(("event", event))
