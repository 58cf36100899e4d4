"""The run worker process: if the GUI process dies mid-run, the worker stops the run cleanly and the run log
says why (the cell is never left running unattended)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sorter.runlog import RunLog
from tests.ui.conftest import REPO
from ui.session import PARENT_GONE

GUI_THAT_DIES = """
import os, sys
from pathlib import Path
from PyQt6.QtCore import QCoreApplication
from sorter.loop import LoopOptions
from sorter.recipe import load_recipe
from ui.session import RunRequest, RunSession

if __name__ == "__main__":
    app = QCoreApplication([])
    request = RunRequest(load_recipe(sys.argv[1]), Path(sys.argv[2]), options=LoopOptions(seed=7))
    session = RunSession(request)
    session.cycle_done.connect(lambda ev: os._exit(3))
    session.start()
    app.exec()
"""


def test_worker_stops_the_run_when_the_gui_process_dies(tmp_path: Path) -> None:
    script = tmp_path / "gui_that_dies.py"
    script.write_text(GUI_THAT_DIES)
    db = tmp_path / "runs.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    gui = subprocess.run([sys.executable, str(script), str(REPO / "recipes" / "toy-blocks.yaml"), str(db)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert gui.returncode == 3, gui.stderr
    deadline = time.monotonic() + 60
    run = None
    while time.monotonic() < deadline:
        with RunLog(db) as log:
            runs = log.runs()
        run = runs[0] if runs else None
        if run is not None and run.finished:
            break
        time.sleep(0.5)
    assert run is not None and run.finished, "the orphaned worker must end its run"
    assert run.end_reason == PARENT_GONE
