"""GUI tests run offscreen on a copy of the shipped recipes, with config and data in a temporary home."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
PIN = "4711"


@pytest.fixture(autouse=True)
def user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Config (PIN) and data (run log) folders of a fresh user."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def recipes_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "recipes"
    shutil.copytree(REPO / "recipes", folder)
    shutil.copytree(REPO / "models", tmp_path / "models")  # the recipes name ../models/*.safetensors
    return folder


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.sqlite"


@pytest.fixture
def window(qtbot, recipes_dir: Path, db_path: Path):
    """The main window on the toy-blocks recipe, with an engineer PIN set as the installer would."""
    from ui.main_window import MainWindow
    from ui.roles import set_pin

    set_pin(PIN)
    w = MainWindow(recipes_dir, db_path, recipe=recipes_dir / "toy-blocks.yaml")
    w.confirm_close = False
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    for session in (w.run_view.session, w.rehearsal.session):
        if session is not None and session.active:
            session.stop("test teardown")
            session.wait(30)


def screenshot(widget, name: str) -> Path:
    """Save what ``widget`` shows as tests/artifacts/<name>.png for a reviewer to look at."""
    from PyQt6.QtWidgets import QApplication

    QApplication.processEvents()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert widget.grab().save(str(path)), f"could not save {path}"
    return path
