"""The operator's run view: live camera with overlays, Start/Pause/Stop, state, alarms, counters, chart, log.

It owns at most one ``RunSession`` at a time and only reacts to its signals, so the GUI thread never waits
for the cell.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from pathlib import Path

import cv2
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from sorter.loop import (
    AlarmAcknowledged,
    AlarmRaised,
    BatchEnded,
    BatchStarted,
    CycleDone,
    FrameOverlay,
    LoopOptions,
    LoopState,
    RunEnded,
    RunLimits,
    StateChanged,
)
from sorter.metrics import purity
from sorter.recipe import Recipe
from sorter.runlog import BatchRecord, CycleRecord
from ui.charts import PEN, PicksPerHourSeries, make_plot
from ui.history import number, percent
from ui.overlays import LAYER_HELP, GripperShape, Layer, OverlayData, ViewGeometry, render
from ui.session import Builder, RunRequest, RunSession
from ui.widgets import AlarmBanner, Counter, ImageView, StatePill

LOG_LINES = 2000
REFRESH_EVERY_MS = 200  # counters and event-log lines are shown in batches: each repaint costs the GUI thread
FRAME_EVERY_MS = 150  # at most ~7 pictures a second: the simulated cell can cycle faster than that
CHART_EVERY_MS = 2000  # redraw the chart at most this often: a plot repaint costs the GUI thread ~10-30 ms
TOP_DOWN_SCALE = 3  # screen pixels per heightmap cell in the top-down view
DEFAULT_LAYERS = frozenset({Layer.REGIONS, Layer.CLUSTER, Layer.ACTION})
CAMERA_VIEW, TOP_DOWN_VIEW = "Camera", "Top-down (height map)"


def odd_seed() -> int:
    """A fresh evaluation seed (odd, as the house rules want for non-training runs)."""
    return secrets.randbits(31) | 1


def describe_cycle(c: CycleRecord) -> str:
    """One event-log line for a cycle."""
    head = f"cycle {c.number} (batch {c.batch}): {c.attention_mode}"
    if not c.action_kind:
        return head + (f" — {c.attention_reason}" if c.attention_reason else "")
    where = f"{c.action_kind} at ({c.x:.3f}, {c.y:.3f}) m"
    if c.safety == "refused":
        return f"{head}, {where} REFUSED by safety: {c.safety_detail}"
    if not c.executed:
        result = "not executed"
    elif c.action_kind == "grasp":
        result = "delivered" if c.delivered else ("held, not delivered" if c.grasp_held else "missed")
    else:
        result = "pushed"
    err = f" ({c.error})" if c.error else ""
    return f"{head}, {where}: {result}{err}"


def describe_frame(ev: FrameOverlay) -> str:
    """The caption under the live image."""
    action = ev.action
    what = "no action" if action is None else \
        f"{action.kind} at ({action.x:.3f}, {action.y:.3f}) m, {math.degrees(action.angle):.0f}°"
    verdict = f", safety {ev.verdict.describe()}" if ev.verdict is not None else ""
    return f"Cycle {ev.cycle} · attention: {ev.attention_mode} · {what}{verdict}"


def overlay_from_frame(ev: FrameOverlay, recipe: Recipe, view: ViewGeometry | None,
                       top_down: bool) -> OverlayData:
    """The picture and maps of one frame: the camera image, or the colour height map seen from above."""
    g = recipe.gripper
    gripper = GripperShape(g.max_opening, g.pad_width, g.pad_thickness)
    if top_down or view is None:
        image = cv2.resize(ev.color, None, fx=TOP_DOWN_SCALE, fy=TOP_DOWN_SCALE,
                           interpolation=cv2.INTER_NEAREST)
        view = ViewGeometry.top_down(recipe.workspace.grid(), TOP_DOWN_SCALE)
    else:
        image = ev.image
    regions = [r for r in ev.regions if getattr(r, "mask", None) is not None]
    return OverlayData(image, view, gripper, ev.saliency,
                       [r.mask for r in regions if getattr(r, "accepted", True)],
                       [r.mask for r in regions if not getattr(r, "accepted", True)],
                       getattr(ev.cluster, "mask", None), ev.action, ev.q_map,
                       ev.sighting)


class RunView(QWidget):
    """Runs the chosen recipe and shows what the cell is doing."""

    active_changed = pyqtSignal(bool)
    run_finished = pyqtSignal(object)  # the finished RunSession

    def __init__(self, db_path: Path, builder: Builder | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.db_path = Path(db_path)
        self.builder = builder
        self.recipe: Recipe | None = None
        self.recipe_problem = "Choose a recipe."
        self.session: RunSession | None = None
        self.limits = RunLimits()
        self.operator = ""
        self.seed: int | None = None  # None: a fresh odd seed per run
        self.layers: set[Layer] = set(DEFAULT_LAYERS)
        self._ended = ""
        self.last_frame: FrameOverlay | None = None
        self._drawn: FrameOverlay | None = None
        self.batches: dict[int, BatchRecord] = {}
        self._series = PicksPerHourSeries()
        self._chart_timer = QTimer(self, singleShot=True, interval=CHART_EVERY_MS)
        self._chart_timer.timeout.connect(self._draw_chart)
        self._pending_log: list[str] = []
        self._progress = None
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_EVERY_MS)
        self._refresh_timer.timeout.connect(self.flush)
        self._frame_timer = QTimer(self, singleShot=True, interval=FRAME_EVERY_MS)
        self._frame_timer.timeout.connect(self._frame_due)
        self._build()
        self._update_controls()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.state = StatePill()
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.next_batch_button = QPushButton("Next batch")
        for b in (self.start_button, self.pause_button, self.stop_button, self.next_batch_button):
            b.setMinimumHeight(40)
            b.setMinimumWidth(110)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self._pause_clicked)
        self.stop_button.clicked.connect(lambda: self.stop("stopped by operator"))
        self.next_batch_button.clicked.connect(lambda: self.session and self.session.next_batch())
        self.note = QLabel()
        self.note.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(self.state)
        for b in (self.start_button, self.pause_button, self.stop_button, self.next_batch_button):
            controls.addWidget(b)
        controls.addWidget(self.note, 1)
        self.banner = AlarmBanner()
        self.banner.acknowledge.connect(self.acknowledge)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.banner)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._image_panel())
        split.addWidget(self._figures_panel())
        split.setSizes([720, 480])
        layout.addWidget(split, 1)

    def _image_panel(self) -> QWidget:
        self.image = ImageView()
        self.caption = QLabel()
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.view_choice = QComboBox()
        self.view_choice.addItems([CAMERA_VIEW, TOP_DOWN_VIEW])
        self.view_choice.currentTextChanged.connect(lambda _t: self.redraw())
        toggles = QHBoxLayout()
        toggles.addWidget(self.view_choice)
        self.toggles: dict[Layer, QCheckBox] = {}
        for layer in Layer:
            box = QCheckBox(layer.value)
            box.setToolTip(LAYER_HELP[layer])
            box.setChecked(layer in self.layers)
            box.toggled.connect(lambda on, lay=layer: self.set_layer(lay, on))
            self.toggles[layer] = box
            toggles.addWidget(box)
        toggles.addStretch(1)
        panel = QWidget()
        v = QVBoxLayout(panel)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.image, 1)
        v.addWidget(self.caption)
        v.addLayout(toggles)
        return panel

    def _figures_panel(self) -> QWidget:
        self.counters = {name: Counter(name) for name in
                         ("Picks", "Grasp success", "Picks per hour", "Purity", "Batch", "Cycles")}
        grid = QGridLayout()
        for i, counter in enumerate(self.counters.values()):
            grid.addWidget(counter, i // 3, i % 3)
        self.chart = make_plot("Picks per hour over the run", "cycle time (min)", "picks / h")
        self._curve = self.chart.plot([], [], pen=PEN)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_LINES)
        panel = QWidget()
        v = QVBoxLayout(panel)
        v.setContentsMargins(0, 0, 0, 0)
        v.addLayout(grid)
        v.addWidget(self.chart, 1)
        v.addWidget(QLabel("Events"))
        v.addWidget(self.log, 1)
        return panel

    # ------------------------------------------------------------------ recipe and controls

    @property
    def active(self) -> bool:
        return self.session is not None and self.session.active

    def set_recipe(self, recipe: Recipe | None, problem: str = "") -> None:
        """The recipe the next run uses; None (with the problem in words) makes Start impossible."""
        if self.active:
            raise RuntimeError("the recipe cannot change during a run")
        if recipe is None or self.recipe is None or (recipe.path, recipe.sha256) != (self.recipe.path,
                                                                                     self.recipe.sha256):
            self._ended = ""
        self.recipe = recipe
        self.recipe_problem = problem
        self._update_controls()

    def _update_controls(self) -> None:
        state = self.state.state
        active = self.active
        self.start_button.setEnabled(not active and self.recipe is not None)
        held = any(a.needs_ack for a in self.banner.pending.values())
        self.pause_button.setEnabled(active and state in ("running", "paused") and not held)
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.stop_button.setEnabled(active and state not in ("stopping", "stopped"))
        operator_batches = self.recipe is not None and self.recipe.loop.next_batch.signal == "operator"
        self.next_batch_button.setVisible(operator_batches and not (self.recipe and self.recipe.is_simulated))
        self.next_batch_button.setEnabled(active and state == "running")
        if self.recipe is None:
            self.note.setText(f"<span style='color:#b71c1c'>Cannot start: {self.recipe_problem}</span>")
        elif not active and self._ended:
            self.note.setText(self._ended)
        elif not active:
            cell = "simulated cell" if self.recipe.is_simulated else "HARDWARE cell"
            self.note.setText(f"Ready: {self.recipe.product.name} on the {cell}.")

    # ------------------------------------------------------------------ commands

    def start(self) -> RunSession | None:
        """Start a run of the current recipe; None when there is no valid recipe or a run is active."""
        if self.recipe is None or self.active or not self._hardware_confirmed():
            return None
        seed = self.seed if self.seed is not None else odd_seed()
        options = LoopOptions(operator=self.operator, seed=seed)
        request = RunRequest(self.recipe, self.db_path, self.limits, options)
        session = RunSession(request, self.builder, self)
        self._connect(session)
        self._reset_figures()
        self._ended = ""
        self.session = session
        self._log(f"starting a run of {self.recipe.product.name} (seed {seed})")
        session.start()
        self.state.set_state("starting")
        self.note.setText("Opening the cell…")
        self._update_controls()
        self.active_changed.emit(True)
        return session

    def _hardware_confirmed(self) -> bool:
        """On a real cell the robot will move: ask that the cell is clear before every run."""
        if self.recipe.is_simulated:
            return True
        answer = QMessageBox.question(
            self, "Start on the real cell", f"{self.recipe.product.name} runs on the HARDWARE cell and the "
            "robot will move. Is the cell clear and the guard closed?")
        return answer == QMessageBox.StandardButton.Yes

    def _pause_clicked(self) -> None:
        if self.session is None:
            return
        if self.state.state == "paused":
            self.session.resume()
        else:
            self.session.pause()

    def stop(self, reason: str = "stopped by operator") -> None:
        if self.active:
            self._log(f"stop requested: {reason}")
            self.session.stop(reason)
            self.stop_button.setEnabled(False)

    def acknowledge(self, alarm_id: int) -> None:
        if self.active:
            self.session.acknowledge(alarm_id)

    def set_layer(self, layer: Layer, on: bool) -> None:
        if on:
            self.layers.add(layer)
        else:
            self.layers.discard(layer)
        if self.toggles[layer].isChecked() != on:
            self.toggles[layer].setChecked(on)
        self.redraw()

    # ------------------------------------------------------------------ session events

    def _connect(self, s: RunSession) -> None:
        s.state_changed.connect(self._on_state)
        s.batch_started.connect(self._on_batch_started)
        s.batch_ended.connect(self._on_batch_ended)
        s.cycle_done.connect(self._on_cycle)
        s.frame.connect(self._on_frame)
        s.alarm_raised.connect(self._on_alarm)
        s.alarm_acknowledged.connect(self._on_ack)
        s.run_ended.connect(self._on_run_ended)
        s.failed.connect(self._on_failed)
        s.finished.connect(self._on_finished)

    def _on_state(self, ev: StateChanged) -> None:
        self._log(f"{ev.new}: {ev.reason}")
        self.flush()
        self.state.set_state(str(ev.new))
        if ev.new is LoopState.RUNNING:
            self.note.setText(f"Running {self.recipe.product.name if self.recipe else ''}.")
        elif ev.new in (LoopState.PAUSED, LoopState.FAULTED) and self.banner.shown is not None:
            self.note.setText("Held by the alarm below: deal with it, then press Acknowledge.")
        elif ev.new in (LoopState.PAUSED, LoopState.FAULTED):
            self.note.setText(ev.reason)
        self._update_controls()

    def _on_batch_started(self, ev: BatchStarted) -> None:
        b = ev.batch
        self.batches[b.number] = b
        self.counters["Batch"].set(str(b.number))
        truth = "" if b.impurities_at_start is None else \
            f" ({b.impurities_at_start} impurities among {b.items_at_start} objects)"
        self._log(f"batch {b.number} started{truth}")

    def _on_batch_ended(self, ev: BatchEnded) -> None:
        b = ev.batch
        self.batches[b.number] = b
        left = "" if b.impurities_left is None else f", {b.impurities_left} impurities left"
        self._log(f"batch {b.number} ended: {b.end_reason}{left}")
        self.counters["Purity"].set(percent(purity(list(self.batches.values()))))

    def _on_cycle(self, ev: CycleDone) -> None:
        self._progress = ev.progress
        self._series.add(ev.record)
        self._log(describe_cycle(ev.record))
        if not self._chart_timer.isActive():
            self._chart_timer.start()

    def _show_progress(self) -> None:
        p = self._progress
        if p is None:
            return
        self.counters["Picks"].set(str(p.picks))
        self.counters["Grasp success"].set(percent(p.grasp_success))
        self.counters["Picks per hour"].set(number(p.picks_per_hour))
        self.counters["Cycles"].set(str(p.cycles))

    def _on_frame(self, ev: FrameOverlay) -> None:
        self.last_frame = ev
        if not self._frame_timer.isActive():
            self.redraw()
            self._frame_timer.start()

    def _on_alarm(self, ev: AlarmRaised) -> None:
        a = ev.alarm
        self._log(f"ALARM [{a.severity}] {a.code}: {a.message}")
        self.banner.add(a)
        self._update_controls()

    def _on_ack(self, ev: AlarmAcknowledged) -> None:
        self._log(f"alarm {ev.alarm_id} acknowledged")
        self.banner.remove(ev.alarm_id)
        self._update_controls()

    def _on_run_ended(self, ev: RunEnded) -> None:
        self._log(f"run {ev.run_id} ended: {ev.reason}")
        self._draw_chart()

    def _on_failed(self, message: str) -> None:
        self._log(f"ERROR: {message}")
        self.note.setText(f"<span style='color:#b71c1c'>{message}</span>")

    def _on_finished(self) -> None:
        self.flush()
        session = self.session
        if self.state.state not in ("stopped",):
            self.state.set_state("stopped" if session and session.run_id else "idle")
        self.banner.clear()
        self._update_controls()
        if session is not None and session.end_reason:
            self._ended = f"Run {session.run_id} ended: {session.end_reason}"
        elif session is not None and session.error:
            self._ended = f"<span style='color:#b71c1c'>{session.error}</span>"
        else:
            self._ended = "The run was cancelled before the robot moved."
        self.note.setText(self._ended)
        self.active_changed.emit(False)
        self.run_finished.emit(session)

    # ------------------------------------------------------------------ drawing

    def _frame_due(self) -> None:
        """Draw the frame that arrived while the last one was still on screen for its minimum time."""
        if self.last_frame is not None and self.last_frame is not self._drawn:
            self.redraw()

    def redraw(self) -> None:
        """Render the last frame with the chosen view and layers."""
        ev = self.last_frame
        if ev is None or self.recipe is None:
            return
        self._drawn = ev
        view = self.session.view if self.session is not None else None
        top_down = self.view_choice.currentText() == TOP_DOWN_VIEW
        self.image.set_image(render(overlay_from_frame(ev, self.recipe, view, top_down), self.layers))
        self.caption.setText(describe_frame(ev))

    def _reset_figures(self) -> None:
        self.batches.clear()
        self.last_frame = None
        self.image.set_image(None)
        self.caption.clear()
        self._series = PicksPerHourSeries()
        self._progress = None
        self._curve.setData([], [])
        for counter in self.counters.values():
            counter.set("—")
        self.banner.clear()

    def _draw_chart(self) -> None:
        self._curve.setData(self._series.minutes, self._series.rate)

    def _log(self, text: str) -> None:
        """Queue an event-log line; lines and counters reach the screen together a few times a second."""
        self._pending_log.append(f"{dt.datetime.now():%H:%M:%S}  {text}")
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def flush(self) -> None:
        """Show queued event-log lines and the latest counters now."""
        self._refresh_timer.stop()
        if self._pending_log:
            self.log.appendPlainText("\n".join(self._pending_log))
            self._pending_log.clear()
        self._show_progress()
