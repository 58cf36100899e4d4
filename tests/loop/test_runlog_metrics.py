"""Run log round trips and concurrent reads, metrics of known records, and the `sorter runs` commands."""

from __future__ import annotations

import csv
import io
import sqlite3

import pytest

from sorter.cli import main
from sorter.metrics import (
    action_efficiency,
    false_picks,
    grasp_success,
    picks,
    picks_per_hour,
    purity,
    summarize,
)
from sorter.runlog import SCHEMA_VERSION, BatchRecord, CycleRecord, RunInfo, RunLog, RunLogError


def cycle(number, kind="grasp", held=False, delivered=False, impurity=None, motion=10.0, batch=1,
          outcome="", executed=True):
    return CycleRecord(batch=batch, number=number, wall_time=1000.0 + number, cell_time=number * 10.0,
                       attention_mode="target", attention_reason="impurity", action_kind=kind,
                       x=0.5, y=0.0, z=0.01, angle=0.5, q_push=0.1, q_grasp=0.9, pixel="2,100,100",
                       safety="ok", outcome=outcome or ("picked" if delivered else "missed"),
                       executed=executed, grasp_held=held, delivered=delivered, finger_width=0.02,
                       motion_s=motion if executed else 0.0, ms_capture=50.0, ms_perception=40.0,
                       ms_decision=10.0, ms_safety=1.0, ms_execute=200.0, picked_impurity=impurity,
                       picked_names="red-cube" if delivered else "")


def run_info(**kw):
    base = dict(recipe_name="toy-blocks", recipe_path="/r/toy-blocks.yaml", recipe_sha256="ab" * 32,
                policy="heuristic", model_sha256="", cell="sim", operator="ann", seed=1, dry_run=False,
                started_at=1000.0)
    base.update(kw)
    return RunInfo(**base)


RECORDS = [
    cycle(1, held=True, delivered=True, impurity=True),
    cycle(2, held=False),
    cycle(3, kind="push", outcome="pushed"),
    cycle(4, held=True, delivered=True, impurity=False),
    cycle(5, held=True, delivered=False, outcome="lost"),
    CycleRecord(batch=1, number=6, wall_time=1006.0, cell_time=60.0, attention_mode="clean",
                outcome="clean", ms_perception=40.0),
]
BATCHES = [BatchRecord(1, 1000.0, 1010.0, "clean", impurities_at_start=3, impurities_left=1),
           BatchRecord(2, 1010.0, 1020.0, "action limit", impurities_at_start=2, impurities_left=2)]


def test_metrics_of_known_records():
    assert picks(RECORDS) == 2
    assert grasp_success(RECORDS) == pytest.approx(3 / 4)
    assert false_picks(RECORDS) == 1
    assert action_efficiency(RECORDS) == pytest.approx(1 / 5)
    seconds = 5 * 10.0 + 6 * 0.040 + 5 * 0.010
    assert picks_per_hour(RECORDS) == pytest.approx(2 * 3600 / seconds)
    assert purity(BATCHES) == pytest.approx(1 - 1 / 3)
    m = summarize(RECORDS, BATCHES)
    assert (m.actions, m.grasps, m.pushes, m.lost_items, m.clean_batches) == (5, 4, 1, 1, 1)
    assert m.time.overhead_share == pytest.approx(0.050 / 10.0)


def test_metrics_without_ground_truth_say_unknown():
    real = [cycle(1, held=True, delivered=True, impurity=None)]
    assert false_picks(real) is None
    assert action_efficiency(real) == 1.0
    assert purity([BatchRecord(1, 0.0, 1.0, "clean")]) is None
    assert grasp_success([]) is None and picks_per_hour([]) is None


def test_the_log_round_trips_runs_batches_cycles_and_alarms(tmp_path):
    with RunLog(tmp_path / "runs.sqlite") as log:
        run_id = log.start_run(run_info())
        log.start_batch(run_id, BatchRecord(1, 1000.0, impurities_at_start=3, items_at_start=10))
        for r in RECORDS:
            log.record_cycle(run_id, r)
        alarm = log.raise_alarm(run_id, "protective stop", "stop", "bumped", needs_ack=True)
        log.acknowledge_alarm(alarm.id, at=1234.5)
        log.end_batch(run_id, 1, "clean", impurities_left=0)
        log.end_run(run_id, "max picks reached (2)", {"picks": 2})
    with RunLog(tmp_path / "runs.sqlite") as log:
        assert log.cycles(run_id) == RECORDS
        info = log.run(run_id)
        assert info.finished and info.end_reason == "max picks reached (2)" and info.operator == "ann"
        (batch,) = log.batches(run_id)
        assert (batch.end_reason, batch.impurities_at_start, batch.impurities_left) == ("clean", 3, 0)
        (stored,) = log.alarms(run_id)
        assert stored.acknowledged_at == 1234.5 and stored.needs_ack is True
        mode = log._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_readers_see_committed_cycles_while_a_run_is_open(tmp_path):
    path = tmp_path / "runs.sqlite"
    writer = RunLog(path)
    run_id = writer.start_run(run_info())
    writer.start_batch(run_id, BatchRecord(1, 1000.0))
    writer.record_cycle(run_id, RECORDS[0])
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT count(*) FROM cycles").fetchone()[0] == 1
    writer.record_cycle(run_id, RECORDS[1])
    assert reader.execute("SELECT count(*) FROM cycles").fetchone()[0] == 2
    reader.close()
    writer.close()


def test_csv_export_has_a_header_and_one_row_per_cycle(tmp_path):
    with RunLog(tmp_path / "runs.sqlite") as log:
        run_id = log.start_run(run_info())
        for r in RECORDS:
            log.record_cycle(run_id, r)
        out = io.StringIO()
        assert log.export_csv(run_id, out) == len(RECORDS)
        with pytest.raises(RunLogError, match="no run 99"):
            log.export_csv(99, io.StringIO())
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [int(r["number"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["outcome"] == "picked" and rows[5]["action_kind"] == ""


def test_a_log_from_a_newer_schema_is_refused_with_a_message(tmp_path):
    path = tmp_path / "runs.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RunLogError, match="newer sorter"):
        RunLog(path)


def test_runs_commands_list_show_and_export(tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    with RunLog(db) as log:
        done = log.start_run(run_info())
        log.start_batch(done, BatchRecord(1, 1000.0, impurities_at_start=3))
        for r in RECORDS:
            log.record_cycle(done, r)
        log.end_batch(done, 1, "clean", 1)
        log.end_run(done, "max picks reached (2)", {"picks": 2})
        open_run = log.start_run(run_info(operator="bob"))
    assert main(["runs", "list", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "max picks reached (2)" in out and "unfinished" in out
    assert main(["runs", "show", str(done), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "grasp_success" in out and "0.750" in out and "clean" in out
    csv_path = tmp_path / "run.csv"
    assert main(["runs", "export", str(done), "--csv", str(csv_path), "--db", str(db)]) == 0
    assert len(csv_path.read_text().splitlines()) == len(RECORDS) + 1
    assert main(["runs", "show", "42", "--db", str(db)]) == 1
    assert "no run 42" in capsys.readouterr().err
    assert open_run != done
    assert main(["runs", "list", "--db", str(tmp_path / "missing.sqlite")]) == 1
    assert "no run log" in capsys.readouterr().err
