"""Recipe editor: live validation marks the line in plain words, invalid recipes cannot be saved or started,
the form edits the text, saving keeps a backup."""

from __future__ import annotations

from pathlib import Path

import yaml
from PyQt6.QtCore import Qt

from tests.ui.conftest import PIN, screenshot


def _open_editor(window, qtbot):
    assert window.unlock_engineer(PIN)
    window.tabs.setCurrentWidget(window.editor)
    editor = window.editor
    assert editor.path is not None and editor.path.name == "toy-blocks.yaml"
    return editor


def _line_of(text: str, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


def _type_over(editor, qtbot, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` the way a user would: select it and type."""
    doc = editor.text.document()
    cursor = doc.find(old)
    assert not cursor.isNull(), old
    editor.text.setTextCursor(cursor)
    qtbot.keyClicks(editor.text, new)


def test_invalid_edit_is_marked_at_its_line_in_plain_words_and_cannot_be_saved(window, qtbot) -> None:
    editor = _open_editor(window, qtbot)
    before = editor.path.read_text()
    _type_over(editor, qtbot, "speed: 0.5", "speed: fast")
    qtbot.waitUntil(lambda: editor.recipe is None and editor.issue_list.count() > 0, timeout=3000)
    line = _line_of(editor.text.toPlainText(), "speed: fast")
    first = editor.issue_list.item(0).text()
    assert first == f"Line {line}: robot > speed: must be a number (got 'fast')"
    assert list(editor.text.error_lines) == [line]
    assert not editor.save_button.isEnabled() and not editor.rehearse_button.isEnabled()
    assert not editor.form.isEnabled()
    assert "problem" in editor.status.text()
    screenshot(window, "recipe_editor_invalid")

    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    assert editor.save() is False
    assert editor.path.read_text() == before, "an invalid recipe must never reach the file"
    assert not (editor.path.parent / "backup").exists()

    editor.issue_list.itemClicked.emit(editor.issue_list.item(0))
    assert editor.text.textCursor().blockNumber() + 1 == line


def test_yaml_syntax_error_is_located_and_explained(window, qtbot) -> None:
    editor = _open_editor(window, qtbot)
    _type_over(editor, qtbot, "  max_opening: 0.085", " max_opening: 0.085")
    qtbot.waitUntil(lambda: editor.recipe is None, timeout=3000)
    line = _line_of(editor.text.toPlainText(), " max_opening: 0.085")
    assert editor.issues[0].line == line
    assert "indentation" in editor.issue_list.item(0).text()


def test_form_edits_the_text_and_save_keeps_a_backup(window, qtbot) -> None:
    editor = _open_editor(window, qtbot)
    path: Path = editor.path
    before = path.read_text()
    speed = editor.form.editors[("robot", "speed")]
    speed.setValue(0.35)
    qtbot.waitUntil(lambda: "speed: 0.35" in editor.text.toPlainText(), timeout=3000)
    editor.form.editors[("loop", "max_actions_per_batch")].setValue(12)
    assert editor.validate() and editor.recipe.robot.speed == 0.35
    assert editor.recipe.loop.max_actions_per_batch == 12
    assert editor.is_modified and "(modified)" in editor.title.text()
    screenshot(window, "recipe_editor_form")

    assert editor.save()
    saved = path.read_text()
    assert yaml.safe_load(saved)["robot"]["speed"] == 0.35
    assert saved.splitlines()[0] == before.splitlines()[0], "the file's own comments survive a form edit"
    backups = list((path.parent / "backup").glob("toy-blocks.*.yaml.bak"))
    assert len(backups) == 1 and backups[0].read_text() == before
    assert editor.last_backup == backups[0] and not editor.is_modified
    assert window.run_view.recipe.robot.speed == 0.35, "the run view picks up the saved recipe"

    speed.setValue(0.4)
    assert editor.save()
    assert len(list((path.parent / "backup").glob("toy-blocks.*.yaml.bak"))) == 2


def test_an_invalid_recipe_file_cannot_be_started(window, recipes_dir: Path) -> None:
    broken = recipes_dir / "toy-blocks.yaml"
    broken.write_text(broken.read_text().replace("kind: tcdd", "kind: magic"))
    window.select_recipe(broken)
    view = window.run_view
    assert view.recipe is None and not view.start_button.isEnabled()
    assert view.start() is None
    line = _line_of(broken.read_text(), "kind: magic")
    assert f"toy-blocks.yaml is not a valid recipe (Line {line}: policy > kind: must be 'tcdd' or " \
           "'heuristic' (got 'magic'))" in view.note.text()
    screenshot(window, "run_view_invalid_recipe")


def test_policy_model_is_chosen_in_the_form_and_its_file_checked(window, qtbot) -> None:
    editor = _open_editor(window, qtbot)
    assert editor.form.editors[("policy", "kind")].currentText() == "tcdd"
    assert editor.form.model_status.text().startswith("tcdd-ours.safetensors: 0.2 MB, sha256 ")
    model = editor.form.editors[("policy", "model")]
    model.setText("")
    model.setModified(True)
    model.editingFinished.emit()
    assert not editor.validate()
    assert "policy: policy kind 'tcdd' needs 'model'" in editor.issue_list.item(0).text()

    model.setText("models/blocks.safetensors")
    model.setModified(True)
    model.editingFinished.emit()
    assert editor.validate() and editor.recipe.policy.model == "models/blocks.safetensors"
    assert "is missing: train one with `sorter train`" in editor.form.model_status.text()

    weights = editor.path.parent / "models" / "blocks.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"\0" * 2048)
    assert editor.validate()
    assert editor.form.model_status.text().startswith("blocks.safetensors: 0.0 MB, sha256 ")


def test_the_taught_look_and_its_use_are_set_in_the_form(window, qtbot) -> None:
    editor = _open_editor(window, qtbot)
    model = editor.form.editors[("perception", "appearance", "model")]
    use = editor.form.editors[("perception", "appearance", "use")]
    assert model.text() == "../models/toy-blocks.appearance.npz" and use.currentText() == "guard"
    use.setCurrentText("fuse")
    qtbot.waitUntil(lambda: "use: fuse" in editor.text.toPlainText(), timeout=3000)
    assert editor.validate() and editor.recipe.perception.appearance.use == "fuse"
    assert editor.recipe.perception.appearance.model == "../models/toy-blocks.appearance.npz"
