"""Simulated runs from the GUI: start, pause, resume, stop; an alarm and its acknowledgement; closing the
window during a run. The loop, the simulated cell and the run log are the real ones."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QMessageBox

from sorter.runlog import RunLog
from tests.ui.conftest import screenshot
from ui.main_window import CLOSE_REASON
from ui.overlays import Layer

RUN_TIMEOUT_MS = 60_000
SEED = 3


def _start(window, qtbot):
    view = window.run_view
    view.seed = SEED
    qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
    session = view.session
    assert session is not None and session.active
    qtbot.waitUntil(lambda: view.state.state == "running", timeout=RUN_TIMEOUT_MS)
    return view, session


def _cycles(view) -> int:
    text = view.counters["Cycles"].value.text()
    return int(text) if text.isdigit() else 0


def test_start_pause_resume_and_stop_a_simulated_run(window, qtbot, db_path: Path) -> None:
    view, session = _start(window, qtbot)
    assert not view.start_button.isEnabled() and view.stop_button.isEnabled()
    assert not window.chooser.isEnabled() and "RUNNING" in window.windowTitle()
    qtbot.waitUntil(lambda: _cycles(view) >= 2 and view.image.has_image(), timeout=RUN_TIMEOUT_MS)
    assert view.caption.text().startswith("Cycle ")
    for layer in (Layer.SALIENCY, Layer.Q_MAP):
        view.set_layer(layer, True)
    screenshot(window, "run_view_running")
    view.view_choice.setCurrentIndex(1)
    screenshot(view.image, "run_view_top_down")

    qtbot.mouseClick(view.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.state.state == "paused", timeout=RUN_TIMEOUT_MS)
    assert view.pause_button.text() == "Resume"
    paused_at = _cycles(view)
    qtbot.wait(500)
    assert _cycles(view) == paused_at, "no cycle runs while paused"

    qtbot.mouseClick(view.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.state.state == "running", timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: _cycles(view) > paused_at, timeout=RUN_TIMEOUT_MS)

    with qtbot.waitSignal(session.finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(view.stop_button, Qt.MouseButton.LeftButton)
    assert view.state.state == "stopped" and not session.active
    assert view.start_button.isEnabled() and window.chooser.isEnabled()
    log_text = view.log.toPlainText()
    assert "paused: paused by operator" in log_text and "running: resumed by operator" in log_text
    with RunLog(db_path) as log:
        run = log.runs()[0]
        cycles = log.cycles(run.id)
    assert run.id == session.run_id and run.end_reason == "stopped by operator" and run.finished
    assert run.seed == SEED and run.cell == "sim" and run.recipe_name == "toy-blocks"
    assert len(cycles) == _cycles(view)
    screenshot(window, "run_view_stopped")


def test_protective_stop_raises_an_alarm_that_the_operator_acknowledges(window, qtbot, db_path: Path) -> None:
    view, session = _start(window, qtbot)
    session.inject_fault("protective_stop_next_action")
    qtbot.waitUntil(lambda: view.banner.isVisible(), timeout=RUN_TIMEOUT_MS)
    alarm = view.banner.shown
    assert alarm.code == "protective stop" and alarm.needs_ack
    qtbot.waitUntil(lambda: view.state.state == "paused", timeout=RUN_TIMEOUT_MS)
    assert not view.pause_button.isEnabled(), "only Acknowledge can release an alarm hold"
    assert "protective stop" in view.banner.text.text()
    held_at = _cycles(view)
    screenshot(window, "run_view_alarm")

    qtbot.mouseClick(view.banner.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.banner.isVisible(), timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: view.state.state == "running", timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: _cycles(view) > held_at, timeout=RUN_TIMEOUT_MS)
    with qtbot.waitSignal(session.finished, timeout=RUN_TIMEOUT_MS):
        view.stop()
    with RunLog(db_path) as log:
        alarms = log.alarms(session.run_id)
    stops = [a for a in alarms if a.code == "protective stop"]
    assert len(stops) == 1 and stops[0].acknowledged_at is not None
    assert stops[0].acknowledged_at >= stops[0].raised_at


def test_closing_the_window_during_a_run_stops_it_and_the_log_says_why(window, qtbot, db_path: Path,
                                                                         monkeypatch) -> None:
    view, session = _start(window, qtbot)
    qtbot.waitUntil(lambda: _cycles(view) >= 1, timeout=RUN_TIMEOUT_MS)
    window.confirm_close = True
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    window.close()
    assert window.isVisible() and session.active, "answering No keeps the run going"

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.close()
    assert window.isVisible(), "the window waits for the run to stop"
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert not session.active
    with RunLog(db_path) as log:
        run = log.run(session.run_id)
    assert run.end_reason == CLOSE_REASON and run.finished


def test_stop_while_the_cell_is_opening_cancels_before_the_robot_moves(window, qtbot, db_path: Path) -> None:
    view = window.run_view
    view.seed = SEED
    session = view.start()
    assert view.state.state == "starting" and view.stop_button.isEnabled()
    with qtbot.waitSignal(session.finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(view.stop_button, Qt.MouseButton.LeftButton)
    assert session.run_id is None and view.state.state == "idle"
    assert view.note.text() == "The run was cancelled before the robot moved."
    assert view.start_button.isEnabled()
    with RunLog(db_path) as log:
        assert log.runs() == []


def test_a_hardware_recipe_drives_the_real_cell_after_confirmation(window, qtbot, recipes_dir: Path,
                                                                     db_path: Path, monkeypatch) -> None:
    hardware = recipes_dir / "toy-blocks-line.yaml"
    text = (recipes_dir / "toy-blocks.yaml").read_text()
    hardware.write_text(text.replace("camera:\n  kind: sim", "camera:\n  kind: realsense\n  serial: '000000'")
                        .replace("robot:\n  kind: sim", "robot:\n  kind: ur\n  host: 192.0.2.1"))
    window.select_recipe(hardware)
    view = window.run_view
    assert "HARDWARE" in window.cell_label.text() and "HARDWARE cell" in view.note.text()

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    assert view.start() is None, "no run without the operator's confirmation that the cell is clear"

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    session = view.start()
    with qtbot.waitSignal(session.finished, timeout=RUN_TIMEOUT_MS):
        pass
    assert session.error and "Traceback" not in session.error, "no device here: the real cell cannot open"
    assert view.state.state == "idle" and session.error in view.note.text()
    with RunLog(db_path) as log:
        assert log.runs() == []


def test_every_overlay_toggle_says_what_its_layer_draws(window) -> None:
    """Operators read the overlay colours from the toggles' tooltips; the cluster layer names the amber
    sighting a heap search pushes around."""
    toggles = window.run_view.toggles
    assert set(toggles) == set(Layer)
    assert all(len(box.toolTip()) > 20 for box in toggles.values())
    assert "amber" in toggles[Layer.CLUSTER].toolTip()
