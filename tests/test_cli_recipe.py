"""`sorter recipe check|schema` as a user runs them: exit codes, messages, and no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import RECIPES


def _sorter(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sorter.cli", *args], capture_output=True, text=True,
                          timeout=60)


def test_check_passes_every_shipped_recipe() -> None:
    result = _sorter("recipe", "check", *map(str, RECIPES))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok") == len(RECIPES)


def test_check_reports_broken_file_with_line_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPES[0].read_text().replace("kind: sim", "kind: simulated", 1))
    result = _sorter("recipe", "check", str(RECIPES[0]), str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}:" in result.stderr and "camera.kind" in result.stderr


def test_check_never_imports_torch_or_mujoco() -> None:
    code = (f"import sys; from sorter.cli import main; rc = main(['recipe', 'check', {str(RECIPES[0])!r}]); "
            "print(sorted(m for m in ('torch', 'mujoco', 'cv2', 'sklearn') if m in sys.modules)); "
            "sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_schema_is_json() -> None:
    result = _sorter("recipe", "schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "sorter recipe"
