""""Rehearse in simulation" runs the editor's text (saved or not) for a few cycles on the simulated cell."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt

from sorter.recipe import RecipeError
from sorter.runlog import RunLog
from tests.ui.conftest import PIN, REPO, screenshot
from ui.rehearsal import REHEARSAL_DB
from ui.wiring import simulated_recipe

TIMEOUT_MS = 60_000


def test_rehearsal_runs_the_unsaved_text_and_shows_each_cycle(window, qtbot, db_path: Path) -> None:
    assert window.unlock_engineer(PIN)
    window.tabs.setCurrentWidget(window.editor)
    editor, panel = window.editor, window.rehearsal
    editor.form.editors[("robot", "speed")].setValue(0.3)
    assert editor.validate() and editor.is_modified
    panel.seed = 5
    panel.cycles_box.setValue(3)
    with qtbot.waitSignal(panel.finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(editor.rehearse_button, Qt.MouseButton.LeftButton)
    assert "Rehearsal ended (max cycles reached (3))" in panel.summary.text()
    cycle_rows = [r for r in range(panel.table.rowCount()) if panel.table.item(r, 0).text().isdigit()]
    assert len(cycle_rows) == 3
    assert panel.image.has_image()
    screenshot(window, "recipe_rehearsal")

    with RunLog(db_path.with_name(REHEARSAL_DB)) as log:
        runs = log.runs()
    text_sha = hashlib.sha256(editor.text.toPlainText().encode()).hexdigest()
    assert len(runs) == 1 and runs[0].recipe_sha256 == text_sha, "the edited text was rehearsed"
    assert runs[0].operator.endswith("(rehearsal)") and runs[0].seed == 5
    assert not db_path.exists() or RunLog(db_path).runs() == [], "rehearsals stay out of the line's history"
    assert editor.is_modified, "rehearsing does not save"


def test_a_hardware_recipe_is_rehearsed_on_the_simulated_cell() -> None:
    text = (REPO / "recipes" / "toy-blocks.yaml").read_text()
    hardware = text.replace("camera:\n  kind: sim", "camera:\n  kind: realsense") \
        .replace("robot:\n  kind: sim", "robot:\n  kind: ur\n  host: 192.168.1.10") \
        .replace("gripper:\n  kind: sim", "gripper:\n  kind: robotiq-2f85")
    assert hardware.count("kind: sim") == 0
    recipe = simulated_recipe(hardware, None)
    assert recipe.is_simulated and recipe.gripper.kind == "sim" and recipe.robot.host == "192.168.1.10"
    no_pose = "\n".join(line for line in hardware.splitlines() if not line.startswith("  pose:"))
    with pytest.raises(RecipeError, match="needed to rehearse in simulation"):
        simulated_recipe(no_pose, None)
