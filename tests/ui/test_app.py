"""The sorter-gui entry point: argument handling and the latency report (figures are printed, not judged)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sorter.runlog import RunLog
from tests.ui.conftest import REPO


def test_measure_latency_runs_a_simulated_run_and_prints_the_figures(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, "-m", "ui.app", "--measure-latency", "2", "--db", str(db),
         "--recipe", str(REPO / "recipes" / "toy-blocks.yaml")],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert result.returncode in (0, 2), result.stderr
    assert re.search(r"\d+ cycles during the measurement; event-loop latency over \d+ ticks: median "
                     r"[\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms, \d+ ticks over 50 ms",
                     result.stdout), result.stdout
    with RunLog(db) as log:
        runs = log.runs()
    assert len(runs) == 1 and runs[0].end_reason == "latency measurement done"


def test_a_hardware_recipe_cannot_be_used_for_the_latency_measurement(tmp_path: Path) -> None:
    hardware = tmp_path / "hw.yaml"
    text = (REPO / "recipes" / "toy-blocks.yaml").read_text()
    hardware.write_text(text.replace("camera:\n  kind: sim", "camera:\n  kind: realsense")
                        .replace("robot:\n  kind: sim", "robot:\n  kind: ur\n  host: 10.0.0.2"))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    args = ["--measure-latency", "1", "--recipe", str(hardware), "--db", str(tmp_path / "runs.sqlite")]
    result = subprocess.run([sys.executable, "-m", "ui.app", *args], capture_output=True, text=True,
                            timeout=120, env=env, cwd=REPO)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "needs a valid simulated recipe" in result.stderr
