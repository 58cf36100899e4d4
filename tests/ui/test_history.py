"""Run history reads the run log: run list, per-run summary and charts, CSV export."""

from __future__ import annotations

import csv
import time
from pathlib import Path

from PyQt6.QtCore import Qt

from sorter.runlog import BatchRecord, CycleRecord, RunInfo, RunLog
from tests.ui.conftest import PIN, screenshot


def _record_run(db: Path, name: str, outcomes: list[tuple[str, bool]]) -> int:
    """A run with one batch whose cycles are (action kind, delivered) pairs, through the real run log."""
    with RunLog(db) as log:
        run_id = log.start_run(RunInfo(name, f"/recipes/{name}.yaml", "ab" * 32, "heuristic", "", "sim",
                                       "tester", 7, False, time.time()))
        log.start_batch(run_id, BatchRecord(1, time.time(), impurities_at_start=4, items_at_start=12))
        for i, (kind, ok) in enumerate(outcomes, start=1):
            log.record_cycle(run_id, CycleRecord(
                batch=1, number=i, wall_time=time.time(), cell_time=2.0 * i, attention_mode="target",
                action_kind=kind, x=0.5, y=0.0, z=0.02, angle=0.0, executed=True,
                grasp_held=ok and kind == "grasp", delivered=ok and kind == "grasp", motion_s=2.0,
                ms_perception=50.0, ms_decision=50.0, picked_impurity=True if ok else None))
        log.end_batch(run_id, 1, "clean", 1)
        log.raise_alarm(run_id, "item lost", "warning", "a held item did not reach the bin", False)
        log.end_run(run_id, "stopped by operator")
    return run_id


def test_history_lists_runs_summarises_and_exports_csv(window, qtbot, db_path: Path, tmp_path: Path) -> None:
    first = _record_run(db_path, "toy-blocks", [("grasp", True), ("push", False), ("grasp", False)])
    second = _record_run(db_path, "coal-slate", [("grasp", True)] * 5)
    assert window.unlock_engineer(PIN)
    window.tabs.setCurrentWidget(window.history)
    view = window.history
    qtbot.waitUntil(lambda: view.table.rowCount() == 2, timeout=3000)
    assert [view.table.item(r, 0).text() for r in range(2)] == [str(second), str(first)], "newest first"
    assert view.table.item(1, 2).text() == "toy-blocks"
    assert view.table.item(1, 6).text() == "stopped by operator"

    view.table.selectRow(1)
    metrics = view.show_run(first)
    assert metrics.picks == 1 and metrics.grasps == 2 and metrics.pushes == 1
    summary = {view.summary.itemAt(r, view.summary.ItemRole.LabelRole).widget().text():
               view.summary.itemAt(r, view.summary.ItemRole.FieldRole).widget().text()
               for r in range(view.summary.rowCount())}
    assert summary["Picks"] == "1" and summary["Grasp success"] == "50.0 %"
    assert summary["Purity"] == "75.0 %" and summary["Ended because"] == "stopped by operator"
    assert summary["Picks per hour"] == "571"  # 1 pick in 3 cycles of 2.1 s each: 3600 / 6.3
    curve = view.pph_plot.getPlotItem().listDataItems()[0]
    assert len(curve.xData) == 3 and round(curve.yData[-1]) == 571
    assert view.alarm_list.count() == 1 and "did not reach the bin" in view.alarm_list.item(0).text()
    screenshot(window, "history_view")

    out = tmp_path / "run.csv"
    assert view.export_csv(first, out) == 3
    rows = list(csv.DictReader(out.open()))
    assert [r["action_kind"] for r in rows] == ["grasp", "push", "grasp"]
    assert rows[0]["delivered"] == "True" and rows[2]["delivered"] == "False"
    assert view.export_button.isEnabled()
    qtbot.mouseClick(view.refresh_button, Qt.MouseButton.LeftButton)
    assert view.table.rowCount() == 2


def test_history_of_an_empty_run_log_says_so(window, qtbot) -> None:
    assert window.unlock_engineer(PIN)
    window.tabs.setCurrentWidget(window.history)
    assert window.history.table.rowCount() == 0
    assert window.history.message.text() == "No runs recorded yet."
