"""`sorter run` end to end in subprocesses: the JSON summary, a dry run, clear errors, and kill -9 mid-run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sorter.runlog import RunLog
from tests.loop.conftest import RECIPES

ROOT = Path(__file__).resolve().parents[2]
TOY = RECIPES / "toy-blocks.yaml"
SUMMARY_KEYS = {"picks", "grasp_success", "action_efficiency", "picks_per_hour", "purity", "false_picks"}


def sorter(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sorter.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_run_writes_a_json_summary_and_the_default_db_in_the_data_dir(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    out = tmp_path / "summary.json"
    proc = sorter("run", "--recipe", str(TOY), "--max-picks", "2", "--cycles", "20", "--json", str(out),
                  env=env)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    summary = json.loads(out.read_text())
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["picks"] == 2 and summary["end_reason"] == "max picks reached (2)"
    assert "picks_per_hour" in stdout and "Traceback" not in stderr
    db = tmp_path / "data" / "sorter" / "runs.sqlite"
    with RunLog(db) as log:
        (run,) = log.runs()
        assert run.end_reason == "max picks reached (2)" and run.recipe_name == "toy-blocks"


def test_dry_run_prints_actions_with_their_verdict_and_moves_nothing(tmp_path):
    proc = sorter("run", "--recipe", str(TOY), "--dry-run", "--cycles", "3", "--db",
                  str(tmp_path / "runs.sqlite"))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    lines = [line for line in stdout.splitlines() if line.startswith("cycle ")]
    assert len(lines) == 3 and all("safety" in line or "clean" in line for line in lines)
    with RunLog(tmp_path / "runs.sqlite") as log:
        (run,) = log.runs()
        cycles = log.cycles(run.id)
        assert run.dry_run and not any(c.executed for c in cycles)
        assert all(c.motion_s == 0.0 for c in cycles)


def test_a_missing_model_is_a_clear_error_not_a_traceback(tmp_path):
    text = TOY.read_text().replace("../models/tcdd-ours.safetensors", "models/none.safetensors")
    recipe = tmp_path / "toy-tcdd.yaml"
    recipe.write_text(text)
    proc = sorter("run", "--recipe", str(recipe), "--db", str(tmp_path / "runs.sqlite"))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "none.safetensors" in stderr and "Traceback" not in stderr


def test_ctrl_c_stops_cleanly_and_records_why(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = sorter("run", "--recipe", str(TOY), "--db", str(db))
    _wait_for_cycles(db, proc, 2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    with RunLog(db) as log:
        (run,) = log.runs()
    assert run.end_reason == "interrupted by operator (Ctrl-C)"


def _count_cycles(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM cycles").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _wait_for_cycles(db: Path, proc: subprocess.Popen, n: int, timeout: float = 240.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sorter run ended early: {proc.stderr.read()}")
        seen = _count_cycles(db)
        if seen >= n:
            return seen
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"fewer than {n} cycles recorded in {timeout} s")


def test_kill_9_mid_run_loses_at_most_the_cycle_in_flight(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = sorter("run", "--recipe", str(TOY), "--db", str(db))
    seen = _wait_for_cycles(db, proc, 6)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()
    with RunLog(db) as log:
        (run,) = log.runs()
        cycles = log.cycles(run.id)
        batches = log.batches(run.id)
    assert not run.finished
    assert len(cycles) >= seen
    assert [c.number for c in cycles] == list(range(1, len(cycles) + 1))
    assert {c.batch for c in cycles} <= {b.number for b in batches}
    assert all(c.outcome and c.attention_mode for c in cycles)
