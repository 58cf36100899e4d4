"""Recipe editor (engineer role): YAML text with live validation, a form, save with backup, rehearsal.

The text is the single source: the form writes into it, validation reads it. An invalid recipe cannot be
saved; the previous version of a saved file is kept in a ``backup/`` folder beside it.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from sorter.recipe import Recipe, RecipeError, RecipeIssue
from ui.recipe_form import RecipeForm
from ui.recipe_text import RecipeTextEdit, describe
from ui.wiring import recipe_from_text
from ui.yaml_edit import Scalar, set_value

VALIDATE_DELAY_MS = 250
BACKUP_DIR = "backup"
OK_STYLE = "color: #1b6e20; font-weight: bold"
BAD_STYLE = "color: #b71c1c; font-weight: bold"


def validate_text(text: str, path: Path | None) -> tuple[Recipe | None, list[RecipeIssue]]:
    """Parse recipe text as if it were the file at ``path``: the recipe or the issues found."""
    try:
        return recipe_from_text(text, path), []
    except RecipeError as exc:
        return None, list(exc.issues)


def backup_path(path: Path, now: dt.datetime | None = None) -> Path:
    """Where the current version of ``path`` is kept before it is overwritten."""
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    folder = path.parent / BACKUP_DIR
    candidate = folder / f"{path.stem}.{stamp}.yaml.bak"
    n = 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{path.stem}.{stamp}-{n}.yaml.bak"
    return candidate


def write_with_backup(path: Path, text: str) -> Path | None:
    """Atomically replace ``path`` with ``text``; returns the backup of the previous version, if any."""
    backup = None
    if path.exists():
        backup = backup_path(path)
        backup.parent.mkdir(parents=True, exist_ok=True)
        backup.write_bytes(path.read_bytes())
    tmp = path.with_name(f".{path.name}.saving")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return backup


class RecipeEditor(QWidget):
    """Edits one recipe file; ``saved(path)`` after a successful save."""

    saved = pyqtSignal(Path)
    validity_changed = pyqtSignal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.path: Path | None = None
        self.recipe: Recipe | None = None
        self.issues: list[RecipeIssue] = []
        self.last_backup: Path | None = None
        self._timer = QTimer(self, singleShot=True, interval=VALIDATE_DELAY_MS)
        self._timer.timeout.connect(self.validate)
        self._build()
        self.text.textChanged.connect(self._timer.start)
        self.text.modificationChanged.connect(lambda _m: self._update_title())
        self.form.edited.connect(self._form_edited)
        self.issue_list.itemActivated.connect(self._issue_activated)
        self.issue_list.itemClicked.connect(self._issue_activated)
        QShortcut(QKeySequence.StandardKey.Save, self, activated=self.save)

    def _build(self) -> None:
        self.title = QLabel()
        self.status = QLabel()
        self.save_button = QPushButton("Save")
        self.save_as_button = QPushButton("Save as…")
        self.revert_button = QPushButton("Revert")
        self.rehearse_button = QPushButton("Rehearse in simulation")
        self.save_button.clicked.connect(self.save)
        self.save_as_button.clicked.connect(self.save_as)
        self.revert_button.clicked.connect(self.revert)
        bar = QHBoxLayout()
        bar.addWidget(self.title, 1)
        for button in (self.save_button, self.save_as_button, self.revert_button, self.rehearse_button):
            bar.addWidget(button)
        self.text = RecipeTextEdit()
        self.issue_list = QListWidget()
        self.issue_list.setObjectName("issues")
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.text)
        issues_box = QWidget()
        issues_layout = QVBoxLayout(issues_box)
        issues_layout.setContentsMargins(0, 0, 0, 0)
        issues_layout.addWidget(self.status)
        issues_layout.addWidget(self.issue_list)
        left.addWidget(issues_box)
        left.setSizes([600, 160])
        self.form = RecipeForm()
        form_scroll = QScrollArea()
        form_scroll.setWidget(self.form)
        form_scroll.setWidgetResizable(True)
        self.side = QTabWidget()
        self.side.addTab(form_scroll, "Form")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.side)
        split.setSizes([700, 420])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split, 1)

    @property
    def is_valid(self) -> bool:
        return self.recipe is not None and not self._timer.isActive()

    @property
    def is_modified(self) -> bool:
        return self.text.document().isModified()

    def load(self, path: Path) -> None:
        """Open ``path`` for editing (unreadable files open empty with the problem listed)."""
        self.path = Path(path)
        try:
            content = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            content = f"# cannot read {self.path}: {exc}\n"
        self.text.setPlainText(content)
        self.text.document().setModified(False)
        self.validate()

    def validate(self) -> bool:
        """Check the text now; marks error lines, lists issues, fills the form when valid."""
        self._timer.stop()
        recipe, issues = validate_text(self.text.toPlainText(), self.path)
        was_valid = self.recipe is not None
        self.recipe, self.issues = recipe, issues
        self.text.set_issues(issues)
        self.issue_list.clear()
        for issue in issues:
            item = QListWidgetItem(describe(issue))
            item.setToolTip(str(issue))
            item.setData(Qt.ItemDataRole.UserRole, issue.line or 0)
            self.issue_list.addItem(item)
        if recipe is not None:
            self.form.show_recipe(recipe)
            self.status.setText("Valid recipe")
            self.status.setStyleSheet(OK_STYLE)
        else:
            n = len(issues)
            plural = "s: fix them" if n != 1 else ": fix it"
            self.status.setText(f"{n} problem{plural} to save")
            self.status.setStyleSheet(BAD_STYLE)
        self.form.setEnabled(recipe is not None)
        self.save_button.setEnabled(recipe is not None and self.path is not None)
        self.save_as_button.setEnabled(recipe is not None)
        self.rehearse_button.setEnabled(recipe is not None)
        self._update_title()
        if was_valid != (recipe is not None):
            self.validity_changed.emit(recipe is not None)
        return recipe is not None

    def save(self) -> bool:
        """Write the text to the file if it is a valid recipe; the previous version goes to backup/."""
        if self.path is None:
            return self.save_as()
        if not self.validate():
            self.status.setText("Not saved: " + self.status.text())
            return False
        self.last_backup = write_with_backup(self.path, self.text.toPlainText())
        self.text.document().setModified(False)
        note = f" (previous version kept as {self.last_backup.name})" if self.last_backup else ""
        self.status.setText(f"Saved {self.path.name}{note}")
        self.saved.emit(self.path)
        return True

    def save_as(self) -> bool:
        if not self.validate():
            return False
        start = str(self.path.parent if self.path else Path.cwd())
        name, _ = QFileDialog.getSaveFileName(self, "Save recipe as", start, "Recipes (*.yaml)")
        if not name:
            return False
        self.path = Path(name)
        return self.save()

    def revert(self) -> None:
        if self.path is not None:
            self.load(self.path)

    def _form_edited(self, path: tuple, value: Scalar) -> None:
        try:
            new = set_value(self.text.toPlainText(), path, value)
        except ValueError as exc:
            self.status.setText(f"Form change not applied: {exc}")
            return
        self.text.replace_text(new)
        self.validate()

    def _issue_activated(self, item: QListWidgetItem) -> None:
        line = int(item.data(Qt.ItemDataRole.UserRole) or 0)
        if line:
            self.text.go_to_line(line)

    def _update_title(self) -> None:
        name = str(self.path) if self.path else "new recipe"
        self.title.setText(f"<b>{name}</b>{' (modified)' if self.is_modified else ''}")
