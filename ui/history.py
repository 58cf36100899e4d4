"""Run history (engineer role): runs from the run log, a summary and charts per run, CSV export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sorter.metrics import RunMetrics, summarize
from sorter.runlog import RunInfo, RunLog, RunLogError
from ui.charts import PEN, PEN_ALT, PicksPerHourSeries, make_plot, rolling_success

RUN_COLUMNS = ("Run", "Started", "Recipe", "Cell", "Operator", "Duration", "Ended because")
MAX_RUNS = 200


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def duration(run: RunInfo) -> str:
    if run.ended_at is None:
        return "running or interrupted"
    seconds = int(run.ended_at - run.started_at)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def number(value: float | int | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def summary_rows(run: RunInfo, m: RunMetrics) -> list[tuple[str, str]]:
    """The summary shown for one run, as (label, text) pairs."""
    return [
        ("Recipe", f"{run.recipe_name} ({run.recipe_sha256[:10]})"),
        ("Policy", run.policy + (f" (model {run.model_sha256[:10]})" if run.model_sha256 else "")),
        ("Cell", run.cell),
        ("Started / ended", f"{when(run.started_at)} / {when(run.ended_at)}"),
        ("Ended because", run.end_reason or "—"),
        ("Batches (clean)", f"{m.batches} ({m.clean_batches})"),
        ("Cycles / actions", f"{m.cycles} / {m.actions} ({m.grasps} grasps, {m.pushes} pushes)"),
        ("Picks", str(m.picks)),
        ("Grasp success", percent(m.grasp_success)),
        ("Picks per hour", number(m.picks_per_hour)),
        ("Action efficiency", number(m.action_efficiency, 2)),
        ("Purity", percent(m.purity)),
        ("False picks", number(m.false_picks)),
        ("Items lost on the way", str(m.lost_items)),
        ("Safety refusals", str(m.refusals)),
    ]


class HistoryView(QWidget):
    """Lists recorded runs; selecting one shows its summary, charts and alarms."""

    def __init__(self, db_path: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.db_path = Path(db_path)
        self.runs: list[RunInfo] = []
        self.table = QTableWidget(0, len(RUN_COLUMNS))
        self.table.setHorizontalHeaderLabels(RUN_COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selected)
        self.refresh_button = QPushButton("Refresh")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.refresh_button.clicked.connect(self.refresh)
        self.export_button.clicked.connect(self._export_clicked)
        self.message = QLabel()
        self.summary = QFormLayout()
        self.pph_plot = make_plot("Picks per hour over the run", "cycle time (min)", "picks / h")
        self.success_plot = make_plot("Grasp success (last 10 grasps)", "grasp", "success")
        self.success_plot.setYRange(0, 1)
        self.alarm_list = QListWidget()
        self._layout()

    def _layout(self) -> None:
        bar = QHBoxLayout()
        bar.addWidget(QLabel(f"Run log: {self.db_path}"), 1)
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.export_button)
        detail = QWidget()
        d = QVBoxLayout(detail)
        d.addLayout(self.summary)
        d.addWidget(self.pph_plot, 1)
        d.addWidget(self.success_plot, 1)
        d.addWidget(QLabel("Alarms"))
        d.addWidget(self.alarm_list)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(detail)
        split.setSizes([560, 560])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)

    def refresh(self) -> None:
        """Re-read the run list from the run log."""
        try:
            with RunLog(self.db_path) as log:
                self.runs = log.runs(limit=MAX_RUNS)
        except RunLogError as exc:
            self.message.setText(str(exc))
            self.runs = []
        else:
            self.message.setText(f"{len(self.runs)} run(s)" if self.runs else "No runs recorded yet.")
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            cells = (str(run.id), when(run.started_at), run.recipe_name, run.cell, run.operator,
                     duration(run), run.end_reason or "—")
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        if self.runs:
            self.table.selectRow(0)

    def selected_run(self) -> RunInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self.runs[rows[0].row()] if rows else None

    def show_run(self, run_id: int) -> RunMetrics:
        """Fill the summary, charts and alarms of one run; returns its metrics."""
        with RunLog(self.db_path) as log:
            run = log.run(run_id)
            cycles, batches, alarms = log.cycles(run_id), log.batches(run_id), log.alarms(run_id)
        metrics = summarize(cycles, batches)
        while self.summary.rowCount():
            self.summary.removeRow(0)
        for label, text in summary_rows(run, metrics):
            self.summary.addRow(label, QLabel(text))
        series = PicksPerHourSeries().extend(cycles)
        self.pph_plot.clear()
        self.pph_plot.plot(series.minutes, series.rate, pen=PEN)
        x, y = rolling_success(cycles)
        self.success_plot.clear()
        self.success_plot.plot(x, y, pen=PEN_ALT, symbol="o", symbolSize=4)
        self.alarm_list.clear()
        for a in alarms:
            ack = f"acknowledged {when(a.acknowledged_at)}" if a.acknowledged_at else "not acknowledged"
            self.alarm_list.addItem(f"{when(a.raised_at)}  [{a.severity}] {a.message} ({ack})")
        self.export_button.setEnabled(True)
        return metrics

    def export_csv(self, run_id: int, path: Path) -> int:
        """Write the run's cycles to ``path`` as CSV; returns the number of rows."""
        with RunLog(self.db_path) as log, open(path, "w", newline="", encoding="utf-8") as f:
            rows = log.export_csv(run_id, f)
        self.message.setText(f"Exported {rows} cycles of run {run_id} to {path}")
        return rows

    def _selected(self) -> None:
        run = self.selected_run()
        if run is not None and run.id is not None:
            try:
                self.show_run(run.id)
            except RunLogError as exc:
                self.message.setText(str(exc))

    def _export_clicked(self) -> None:
        run = self.selected_run()
        if run is None or run.id is None:
            return
        name, _ = QFileDialog.getSaveFileName(self, "Export run as CSV", f"run-{run.id}.csv", "CSV (*.csv)")
        if name:
            self.export_csv(run.id, Path(name))

