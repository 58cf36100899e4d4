""""Rehearse in simulation": a few cycles of the recipe being edited, on the simulated cell, through the
real pick loop, with what happened shown cycle by cycle.

The text in the editor is rehearsed as it stands (saved or not); a hardware recipe is switched to the
simulated cell for the rehearsal. Rehearsals are recorded in their own run log beside the production one,
so they never mix with the line's history, and they run unattended: an alarm that would hold a real run
ends the rehearsal and is shown.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sorter.loop import AlarmRaised, BatchEnded, CycleDone, FrameOverlay, LoopOptions, RunEnded, RunLimits
from sorter.recipe import RecipeError
from sorter.runlog import BatchRecord
from ui.history import number, percent
from ui.overlays import Layer, render
from ui.recipe_text import describe
from ui.run_view import describe_cycle, describe_frame, odd_seed, overlay_from_frame
from ui.session import Builder, RunRequest, RunSession
from ui.widgets import ImageView
from ui.wiring import simulated_recipe

REHEARSAL_CYCLES = 6
REHEARSAL_DB = "rehearsals.sqlite"
COLUMNS = ("Cycle", "Attention", "Action", "Result", "Motion s")


class RehearsalPanel(QWidget):
    """Runs and shows a short simulated rehearsal of the editor's recipe."""

    finished = pyqtSignal()

    def __init__(self, db_path: Path, editor, builder: Builder | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.db_path = Path(db_path).with_name(REHEARSAL_DB)
        self.editor = editor
        self.builder = builder
        self.session: RunSession | None = None
        self.recipe = None
        self.seed: int | None = None
        self.batches: dict[int, BatchRecord] = {}
        self.cycles_box = QSpinBox()
        self.cycles_box.setRange(1, 100)
        self.cycles_box.setValue(REHEARSAL_CYCLES)
        self.summary = QLabel("Rehearse runs a few cycles of this recipe on the simulated cell.")
        self.summary.setWordWrap(True)
        self.image = ImageView()
        self.image.message = "Press “Rehearse in simulation”."
        self.image.setMinimumSize(280, 210)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        row = QHBoxLayout()
        row.addWidget(QLabel("Cycles:"))
        row.addWidget(self.cycles_box)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        layout.addWidget(self.image, 2)
        layout.addWidget(self.caption)
        layout.addWidget(self.table, 1)

    @property
    def active(self) -> bool:
        return self.session is not None and self.session.active

    def rehearse(self) -> RunSession | None:
        """Start a rehearsal of the editor's current text; None when it cannot start (reason shown)."""
        if self.active:
            return None
        try:
            recipe = simulated_recipe(self.editor.text.toPlainText(), self.editor.path)
        except (RecipeError, ValueError) as exc:
            issues = getattr(exc, "issues", None)
            text = "; ".join(describe(i) for i in issues) if issues else str(exc)
            self._say(f"Cannot rehearse: {text}", error=True)
            return None
        self.recipe = recipe
        seed = self.seed if self.seed is not None else odd_seed()
        options = LoopOptions(operator=f"{getpass.getuser()} (rehearsal)", seed=seed, unattended=True)
        request = RunRequest(recipe, self.db_path, RunLimits(max_cycles=self.cycles_box.value()), options,
                             simulated=True)
        self.session = RunSession(request, self.builder, self)
        self._connect(self.session)
        self.table.setRowCount(0)
        self.batches.clear()
        self.image.set_image(None)
        self._say(f"Rehearsing {self.cycles_box.value()} cycles on the simulated cell (seed {seed})…")
        self.editor.rehearse_button.setEnabled(False)
        self.session.start()
        return self.session

    def stop(self, reason: str) -> None:
        if self.active:
            self.session.stop(reason)

    def _connect(self, s: RunSession) -> None:
        s.cycle_done.connect(self._on_cycle)
        s.frame.connect(self._on_frame)
        s.batch_ended.connect(self._on_batch_ended)
        s.alarm_raised.connect(self._on_alarm)
        s.run_ended.connect(self._on_run_ended)
        s.failed.connect(lambda message: self._say(f"Rehearsal failed: {message}", error=True))
        s.finished.connect(self._on_finished)

    def _on_cycle(self, ev: CycleDone) -> None:
        c = ev.record
        action = "—" if not c.action_kind else f"{c.action_kind} ({c.x:.3f}, {c.y:.3f})"
        result = describe_cycle(c).rsplit(": ", 1)[-1] if c.action_kind else c.attention_reason or "—"
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col, text in enumerate((str(c.number), c.attention_mode, action, result, f"{c.motion_s:.2f}")):
            item = QTableWidgetItem(text)
            item.setToolTip(describe_cycle(c))
            self.table.setItem(row, col, item)
        self.table.scrollToBottom()

    def _on_frame(self, ev: FrameOverlay) -> None:
        if self.recipe is None:
            return
        data = overlay_from_frame(ev, self.recipe, self.session.view if self.session else None, False)
        self.image.set_image(render(data, set(Layer) - {Layer.Q_MAP}))
        self.caption.setText(describe_frame(ev))

    def _on_batch_ended(self, ev: BatchEnded) -> None:
        self.batches[ev.batch.number] = ev.batch

    def _on_alarm(self, ev: AlarmRaised) -> None:
        a = ev.alarm
        row = self.table.rowCount()
        self.table.insertRow(row)
        item = QTableWidgetItem(f"ALARM [{a.severity}] {a.code}: {a.message}")
        item.setForeground(Qt.GlobalColor.red)
        self.table.setItem(row, 0, item)
        self.table.setSpan(row, 0, 1, len(COLUMNS))

    def _on_run_ended(self, ev: RunEnded) -> None:
        m = ev.metrics
        self._say(f"Rehearsal ended ({ev.reason}): {m.actions} actions, {m.picks} picks, grasp success "
                  f"{percent(m.grasp_success)}, {number(m.picks_per_hour)} picks/h, {m.refusals} safety "
                  f"refusals. {self._impurities()}")

    def _impurities(self) -> str:
        """What ground truth says about the impurities of the rehearsed batches."""
        known = [b for b in self.batches.values()
                 if b.impurities_at_start is not None and b.impurities_left is not None]
        if not known:
            return ""
        start = sum(b.impurities_at_start for b in known)
        removed = start - sum(b.impurities_left for b in known)
        return f"Impurities removed: {removed} of {start} in {len(known)} batch(es)."

    def _on_finished(self) -> None:
        self.editor.rehearse_button.setEnabled(self.editor.recipe is not None)
        self.finished.emit()

    def _say(self, text: str, error: bool = False) -> None:
        self.summary.setText(text)
        self.summary.setStyleSheet("color: #b71c1c" if error else "")
