"""Engineer PIN storage and role gating in the main window."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from tests.ui.conftest import PIN, screenshot
from ui.roles import PinError, Role, pin_path, set_pin, verify_pin


def test_pin_is_stored_salted_and_hashed_never_in_clear() -> None:
    path = set_pin("246810")
    record = json.loads(path.read_text())
    assert path == pin_path() and path.parent.name == "sorter"
    assert "246810" not in path.read_text()
    assert record["algorithm"] == "scrypt" and len(bytes.fromhex(record["salt"])) == 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert verify_pin("246810") and not verify_pin("246811") and not verify_pin("")
    first_hash = record["hash"]
    set_pin("246810")
    assert json.loads(path.read_text())["hash"] != first_hash, "a fresh salt must change the hash"


def test_pin_errors_say_what_to_do() -> None:
    with pytest.raises(PinError, match="--set-pin"):
        verify_pin("1234")
    with pytest.raises(PinError, match="at least 4 digits"):
        set_pin("12")
    with pytest.raises(PinError, match="digits"):
        set_pin("abcd")
    pin_path().parent.mkdir(parents=True)
    pin_path().write_text("{not json")
    with pytest.raises(PinError, match="unreadable"):
        verify_pin("1234")


def test_set_pin_command_reads_stdin_like_the_installer() -> None:
    result = subprocess.run([sys.executable, "-m", "ui.app", "--set-pin"], input="97531\n",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert verify_pin("97531") and not verify_pin("97532")
    bad = subprocess.run([sys.executable, "-m", "ui.app", "--set-pin"], input="1\n",
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "at least 4 digits" in bad.stderr


def test_operator_cannot_reach_recipes_or_history_until_engineer_pin(window) -> None:
    tabs = window.tabs
    editor_tab, history_tab = tabs.indexOf(window.editor), tabs.indexOf(window.history)
    assert window.role is Role.OPERATOR
    assert not tabs.isTabEnabled(editor_tab) and not tabs.isTabEnabled(history_tab)
    assert "Operator" in window.windowTitle() and window.role_label.text() == "Role: Operator"
    screenshot(window, "run_view_operator_idle")

    assert not window.unlock_engineer("0000")
    assert window.role is Role.OPERATOR and not tabs.isTabEnabled(editor_tab)

    assert window.unlock_engineer(PIN)
    assert window.role is Role.ENGINEER
    assert tabs.isTabEnabled(editor_tab) and tabs.isTabEnabled(history_tab)
    assert "Engineer" in window.windowTitle() and window.status_role.text() == "Role: Engineer"

    tabs.setCurrentIndex(editor_tab)
    window.lock()
    assert window.role is Role.OPERATOR
    assert tabs.currentWidget() is window.run_view, "locking leaves the engineer-only view"
    assert not tabs.isTabEnabled(editor_tab)


def test_engineer_role_locks_itself_after_idle_time(window, qtbot) -> None:
    window._idle_lock.setInterval(50)
    assert window.unlock_engineer(PIN)
    qtbot.waitUntil(lambda: window.role is Role.OPERATOR, timeout=3000)
