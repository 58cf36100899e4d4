"""A form for the recipe parameters engineers change most; it edits the YAML text, never a copy.

Ranges are left wide on purpose: the recipe schema is the one judge of what is valid, and an out-of-range
value shows up as an error at its line like any hand edit.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sorter.policy.registry import model_path, model_sha256
from sorter.recipe import AppearanceSpec, NextBatchSpec, PolicySpec, Recipe
from ui.yaml_edit import Scalar


@dataclass(frozen=True)
class FormField:
    """One form row: where the value lives in the recipe and how to edit it."""

    path: tuple[str, ...]
    label: str
    kind: str  # "text" | "optional-text" | "float" | "int" | "choice"
    step: float = 1.0
    decimals: int = 3
    unit: str = ""
    choices: tuple[str, ...] = ()


def _literal_choices(model: type, name: str) -> tuple[str, ...]:
    return tuple(typing.get_args(model.model_fields[name].annotation))


SECTIONS: tuple[tuple[str, tuple[FormField, ...]], ...] = (
    ("Product", (
        FormField(("product", "name"), "Name", "text"),
        FormField(("product", "description"), "Description", "text"),
    )),
    ("Policy", (
        FormField(("policy", "kind"), "Policy", "choice", choices=_literal_choices(PolicySpec, "kind")),
        FormField(("policy", "model"), "Model file", "optional-text"),
    )),
    ("Robot and gripper", (
        FormField(("robot", "speed"), "Tool speed", "float", 0.05, 3, " m/s"),
        FormField(("robot", "acceleration"), "Acceleration", "float", 0.1, 2, " m/s²"),
        FormField(("robot", "contact_speed"), "Contact speed", "float", 0.01, 3, " m/s"),
        FormField(("gripper", "max_opening"), "Gripper opening", "float", 0.005, 3, " m"),
        FormField(("gripper", "force"), "Gripper force", "float", 5.0, 1, " N"),
    )),
    ("Perception", (
        FormField(("perception", "saliency", "region_threshold"), "Saliency region threshold", "float",
                  0.05, 2),
        FormField(("perception", "saliency", "min_peak_ratio"), "Saliency peak ratio", "float", 0.1, 2),
        FormField(("perception", "occlusion", "eps"), "DBSCAN radius", "float", 0.001, 4, " m"),
        FormField(("perception", "occlusion", "min_samples"), "DBSCAN min samples", "int"),
        FormField(("perception", "occlusion", "min_cluster_height"), "Min heap height", "float",
                  0.005, 3, " m"),
        FormField(("perception", "appearance", "model"), "Taught look file (sorter teach)", "optional-text"),
        FormField(("perception", "appearance", "use"), "Taught look used to", "choice",
                  choices=_literal_choices(AppearanceSpec, "use")),
    )),
    ("Pick loop", (
        FormField(("loop", "max_consecutive_failures"), "Failures before moving on", "int"),
        FormField(("loop", "max_actions_per_batch"), "Max actions per batch", "int"),
        FormField(("loop", "clean_confirmations"), "Clean verdicts to end a batch", "int"),
        FormField(("loop", "next_batch", "signal"), "Next batch on", "choice",
                  choices=_literal_choices(NextBatchSpec, "signal")),
    )),
)


def model_status(recipe: Recipe) -> str:
    """One line on the recipe's model file: none needed, found (with its sha256), or missing."""
    path = model_path(recipe)
    if path is None:
        return "none (the scripted heuristic needs no model)"
    if not path.is_file():
        return (f"<span style='color:#b71c1c'>{path} is missing: train one with `sorter train` or copy a "
                "shipped model from models/</span>")
    return f"{path.name}: {path.stat().st_size / 1e6:.1f} MB, sha256 {model_sha256(recipe)[:12]}…"


def recipe_value(recipe: Recipe, path: tuple[str, ...]) -> object:
    value: object = recipe
    for part in path:
        value = getattr(value, part)
    return value


class RecipeForm(QWidget):
    """Editors for the common parameters; emits ``edited(path, value)`` when the user changes one."""

    edited = pyqtSignal(tuple, object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.editors: dict[tuple[str, ...], QWidget] = {}
        self.model_status = QLabel()
        self.model_status.setWordWrap(True)
        layout = QVBoxLayout(self)
        for title, fields in SECTIONS:
            box = QGroupBox(title)
            form = QFormLayout(box)
            for field in fields:
                editor = self._make_editor(field)
                self.editors[field.path] = editor
                form.addRow(field.label, editor)
            if title == "Policy":
                form.addRow("Model", self.model_status)
            layout.addWidget(box)
        layout.addStretch(1)

    def show_recipe(self, recipe: Recipe) -> None:
        """Fill every editor from ``recipe`` without emitting ``edited``."""
        for _title, fields in SECTIONS:
            for field in fields:
                self._set(field, self.editors[field.path], recipe_value(recipe, field.path))
        self.model_status.setText(model_status(recipe))

    def _make_editor(self, field: FormField) -> QWidget:
        if field.kind == "float":
            editor = QDoubleSpinBox()
            editor.setRange(0.0, 10_000.0)
            editor.setDecimals(field.decimals)
            editor.setSingleStep(field.step)
            editor.setSuffix(field.unit)
            editor.setKeyboardTracking(False)
            editor.valueChanged.connect(lambda v, f=field: self.edited.emit(f.path, round(v, f.decimals)))
        elif field.kind == "int":
            editor = QSpinBox()
            editor.setRange(0, 100_000)
            editor.setKeyboardTracking(False)
            editor.valueChanged.connect(lambda v, f=field: self.edited.emit(f.path, int(v)))
        elif field.kind == "choice":
            editor = QComboBox()
            editor.addItems(field.choices)
            editor.currentTextChanged.connect(lambda v, f=field: self.edited.emit(f.path, v))
        else:
            editor = QLineEdit()
            editor.editingFinished.connect(lambda f=field, e=editor: self._text_edited(f, e))
        editor.setObjectName("form:" + ".".join(field.path))
        return editor

    def _text_edited(self, field: FormField, editor: QLineEdit) -> None:
        if not editor.isModified():
            return
        editor.setModified(False)
        text = editor.text().strip()
        value: Scalar = None if field.kind == "optional-text" and not text else text
        self.edited.emit(field.path, value)

    @staticmethod
    def _set(field: FormField, editor: QWidget, value: object) -> None:
        editor.blockSignals(True)
        try:
            if isinstance(editor, QDoubleSpinBox | QSpinBox):
                editor.setValue(value)  # type: ignore[arg-type]
            elif isinstance(editor, QComboBox):
                editor.setCurrentText(str(value))
            elif isinstance(editor, QLineEdit) and not editor.hasFocus():
                editor.setText("" if value is None else str(value))
        finally:
            editor.blockSignals(False)
