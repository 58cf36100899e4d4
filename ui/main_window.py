"""The sorter-gui main window: recipe chooser, role, and the Run, Recipe and History views.

Operators get the run view (run controls, alarms); the recipe editor and run history need the engineer
role, unlocked with the PIN set at install. Closing the window during a run stops the run first, and the
run log records why it ended.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from PyQt6.QtCore import QEvent, QObject, Qt, QTimer
from PyQt6.QtGui import QCloseEvent
from PyQt6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from sorter.recipe import Recipe, RecipeError, load_recipe
from ui.history import HistoryView
from ui.recipe_editor import RecipeEditor
from ui.recipe_text import describe
from ui.rehearsal import RehearsalPanel
from ui.roles import PinError, Role, verify_pin
from ui.run_view import RunView
from ui.session import Builder
from ui.wiring import preload

CLOSE_REASON = "window closed during the run"
ENGINEER_IDLE_LOCK_MS = 15 * 60 * 1000  # back to operator after 15 minutes without input
ACTIVITY_EVENTS = (QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress)
OPEN_OTHER = "Open another file…"
HARDWARE_STYLE = "color: #b71c1c; font-weight: bold"
ROLE_TEXT_STYLE = "color: white; font-weight: bold; padding: 4px 10px; border-radius: 4px"
ROLE_STYLES = {Role.OPERATOR: "background: #455a64", Role.ENGINEER: "background: #6a1b9a"}


def recipe_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.yaml") if p.is_file())


def cell_description(recipe: Recipe) -> str:
    if recipe.is_simulated:
        return "Simulated cell (MuJoCo)"
    robot = f"{recipe.robot.kind} robot at {recipe.robot.host}" if recipe.robot.host else recipe.robot.kind
    return f"HARDWARE: {robot}, {recipe.camera.kind} camera, {recipe.gripper.kind} gripper"


class MainWindow(QMainWindow):
    """The operator application's window."""

    def __init__(self, recipes_dir: Path, db_path: Path, pin_file: Path | None = None,
                 recipe: Path | None = None, builder: Builder | None = None):
        super().__init__()
        self.recipes_dir = Path(recipes_dir)
        self.db_path = Path(db_path)
        self.pin_file = pin_file
        self.role = Role.OPERATOR
        self.recipe_path: Path | None = None
        self.confirm_close = True
        self._closing = False
        self.run_view = RunView(self.db_path, builder)
        self.run_view.operator = getpass.getuser()
        self.editor = RecipeEditor()
        self.rehearsal = RehearsalPanel(self.db_path, self.editor, builder)
        self.history = HistoryView(self.db_path)
        self._build()
        self._idle_lock = QTimer(self, singleShot=True, interval=ENGINEER_IDLE_LOCK_MS)
        self._idle_lock.timeout.connect(self.lock)
        QApplication.instance().installEventFilter(self)
        self.run_view.active_changed.connect(self._run_active)
        self.run_view.run_finished.connect(self._run_finished)
        self.rehearsal.finished.connect(lambda: self._run_finished(None))
        self.editor.saved.connect(self._recipe_saved)
        self._fill_chooser(recipe)
        self._apply_role()
        self.resize(1280, 860)

    def _build(self) -> None:
        self.chooser = QComboBox()
        self.chooser.setMinimumWidth(260)
        self.chooser.activated.connect(self._chooser_activated)
        self.cell_label = QLabel()
        self.role_label = QLabel()
        self.role_button = QPushButton()
        self.role_button.clicked.connect(self._role_clicked)
        header = QHBoxLayout()
        header.addWidget(QLabel("Recipe:"))
        header.addWidget(self.chooser)
        header.addWidget(self.cell_label, 1)
        header.addWidget(self.role_label)
        header.addWidget(self.role_button)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.run_view, "Run")
        self.tabs.addTab(self._editor_page(), "Recipe")
        self.tabs.addTab(self.history, "History")
        self.tabs.currentChanged.connect(self._tab_changed)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(header)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.status_role = QLabel()
        self.statusBar().addPermanentWidget(self.status_role)
        self.statusBar().showMessage(f"Run log: {self.db_path}")

    def _editor_page(self) -> QWidget:
        self.editor.side.addTab(self.rehearsal, "Rehearsal")
        self.editor.rehearse_button.clicked.connect(self._rehearse)
        return self.editor

    # ------------------------------------------------------------------ recipes

    def _fill_chooser(self, preferred: Path | None) -> None:
        files = recipe_files(self.recipes_dir)
        if preferred is not None and Path(preferred).resolve() not in [f.resolve() for f in files]:
            files.append(Path(preferred))
        self.chooser.clear()
        for f in files:
            self.chooser.addItem(f.stem, str(f))
        self.chooser.addItem(OPEN_OTHER, "")
        index = 0
        if preferred is not None:
            index = next((i for i, f in enumerate(files) if f.resolve() == Path(preferred).resolve()), 0)
        if files:
            self.chooser.setCurrentIndex(index)
            self.select_recipe(files[index])
        else:
            self.run_view.set_recipe(None, f"no recipes in {self.recipes_dir}")

    def _chooser_activated(self, index: int) -> None:
        data = self.chooser.itemData(index)
        if data and Path(data) != self.recipe_path and not self._discard_edits():
            self.chooser.setCurrentIndex(self.chooser.findData(str(self.recipe_path)))
            return
        if data:
            self.select_recipe(Path(data))
            return
        name, _ = QFileDialog.getOpenFileName(self, "Open recipe", str(self.recipes_dir), "Recipes (*.yaml)")
        if name:
            self._fill_chooser(Path(name))
        elif self.recipe_path is not None:
            self.chooser.setCurrentIndex(self.chooser.findData(str(self.recipe_path)))

    def select_recipe(self, path: Path) -> Recipe | None:
        """Load ``path`` for the next run and the editor; an invalid recipe cannot be started."""
        self.recipe_path = Path(path)
        try:
            recipe = load_recipe(path)
        except RecipeError as exc:
            problem = describe(exc.issues[0]) if exc.issues else str(exc)
            self.run_view.set_recipe(None, f"{Path(path).name} is not a valid recipe ({problem}); an "
                                     "engineer can fix it in the Recipe tab")
            self.cell_label.setText("")
            recipe = None
        else:
            if recipe.policy.kind != "heuristic":
                self._load_learned_policy_code()
            self.run_view.set_recipe(recipe)
            self.cell_label.setText(cell_description(recipe))
            self.cell_label.setStyleSheet("" if recipe.is_simulated else HARDWARE_STYLE)
        if not self.editor.is_modified:
            self.editor.load(self.recipe_path)
        self._update_title()
        return recipe

    def _discard_edits(self) -> bool:
        """True when there are no unsaved recipe edits or the user agrees to drop them."""
        if not self.editor.is_modified:
            return True
        name = self.editor.path.name if self.editor.path else "the new recipe"
        answer = QMessageBox.question(self, "Unsaved recipe", f"Discard the unsaved changes to {name}?")
        if answer == QMessageBox.StandardButton.Yes:
            self.editor.text.document().setModified(False)
            return True
        return False

    def _load_learned_policy_code(self) -> None:
        """Load torch now, while nothing runs, rather than as a stall at the start of a run."""
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            preload(learned=True)
        finally:
            QApplication.restoreOverrideCursor()

    def _recipe_saved(self, path: Path) -> None:
        if not self.run_view.active:
            self._fill_chooser(path)

    def _rehearse(self) -> None:
        self.editor.side.setCurrentWidget(self.rehearsal)
        self.rehearsal.rehearse()

    # ------------------------------------------------------------------ roles

    def unlock_engineer(self, pin: str) -> bool:
        """Switch to the engineer role when ``pin`` matches the stored PIN."""
        if not verify_pin(pin, self.pin_file):
            return False
        self.role = Role.ENGINEER
        self._apply_role()
        self._idle_lock.start()
        return True

    def lock(self) -> None:
        """Back to the operator role."""
        self.role = Role.OPERATOR
        self._idle_lock.stop()
        self._apply_role()

    def _role_clicked(self) -> None:
        if self.role is Role.ENGINEER:
            self.lock()
            return
        pin, ok = QInputDialog.getText(self, "Engineer", "Engineer PIN:", QLineEdit.EchoMode.Password)
        if not ok:
            return
        try:
            unlocked = self.unlock_engineer(pin)
        except PinError as exc:
            QMessageBox.warning(self, "Engineer role", str(exc))
            return
        if not unlocked:
            QMessageBox.warning(self, "Engineer role", "Wrong PIN. The role stays Operator.")

    def _apply_role(self) -> None:
        engineer = self.role is Role.ENGINEER
        for index in (self.tabs.indexOf(self.editor), self.tabs.indexOf(self.history)):
            self.tabs.setTabEnabled(index, engineer)
            self.tabs.setTabToolTip(index, "" if engineer else "Needs the engineer role (PIN)")
        if not engineer and self.tabs.currentWidget() is not self.run_view:
            self.tabs.setCurrentWidget(self.run_view)
        text = f"Role: {self.role.title}"
        style = f"{ROLE_STYLES[self.role]}; {ROLE_TEXT_STYLE}"
        for label in (self.role_label, self.status_role):
            label.setText(text)
            label.setStyleSheet(style)
        self.role_button.setText("Lock" if engineer else "Engineer…")
        tip = "Back to the operator role" if engineer else "Unlock the engineer role (PIN)"
        self.role_button.setToolTip(tip)
        self._update_title()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if self.role is Role.ENGINEER and event.type() in ACTIVITY_EVENTS:
            self._idle_lock.start()
        return False

    def _tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.history:
            self.history.refresh()

    # ------------------------------------------------------------------ runs and closing

    def _run_active(self, active: bool) -> None:
        self.chooser.setEnabled(not active)
        if not active and self.recipe_path is not None and not self._closing:
            self.select_recipe(self.recipe_path)
        self._update_title()

    def _run_finished(self, _session: object) -> None:
        if self._closing:
            self.close()

    def _update_title(self) -> None:
        name = self.recipe_path.stem if self.recipe_path else "no recipe"
        running = " — RUNNING" if self.run_view.active else ""
        self.setWindowTitle(f"sorter — {name} — {self.role.title}{running}")

    def closeEvent(self, event: QCloseEvent) -> None:
        """During a run: stop it cleanly first (the run log records why), then close."""
        if not self.run_view.active and not self.rehearsal.active:
            if not self._closing and self.confirm_close and not self._discard_edits():
                event.ignore()
                return
            QApplication.instance().removeEventFilter(self)
            event.accept()
            return
        event.ignore()
        if self._closing:
            return
        if self.confirm_close:
            answer = QMessageBox.question(self, "Stop the run?", "A run is in progress. Stop it and close?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._closing = True
        self.run_view.stop(CLOSE_REASON)
        self.rehearsal.stop(CLOSE_REASON)
        self.statusBar().showMessage("Stopping the run before closing…")
