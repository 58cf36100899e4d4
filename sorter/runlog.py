"""The run log: every sorting run, batch, cycle and alarm in one SQLite file.

The database runs in WAL mode and every cycle is committed in its own transaction, so killing the process
at any moment loses at most the cycle in flight and leaves a consistent file that readers (the GUI's
history view, ``sorter runs``) can open while a run is writing. Records are plain dataclasses so the same
metrics score a simulated episode and a logged real run.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sorter.errors import SorterError

SCHEMA_VERSION = 1


class RunLogError(SorterError):
    """The run log cannot be opened, or a run it was asked for does not exist."""


@dataclass(frozen=True)
class CycleRecord:
    """One cycle of the pick loop: what was seen, decided, allowed, done and how long each stage took.

    Times are wall-clock milliseconds of compute per stage; ``motion_s`` is the robot's motion time
    (modelled on the simulated cell). ``picked_impurity`` and ``picked_names`` come from simulator ground
    truth (or an operator's flag on a real line) and are None when unknown.
    """

    batch: int
    number: int
    wall_time: float
    cell_time: float
    attention_mode: str
    attention_reason: str = ""
    action_kind: str | None = None
    x: float | None = None
    y: float | None = None
    z: float | None = None
    angle: float | None = None
    q_push: float | None = None
    q_grasp: float | None = None
    pixel: str = ""
    override: str = ""
    safety: str = ""
    safety_detail: str = ""
    outcome: str = ""
    executed: bool = False
    grasp_held: bool = False
    delivered: bool = False
    finger_width: float = 0.0
    motion_s: float = 0.0
    ms_capture: float = 0.0
    ms_perception: float = 0.0
    ms_decision: float = 0.0
    ms_safety: float = 0.0
    ms_execute: float = 0.0
    picked_impurity: bool | None = None
    picked_names: str = ""
    error: str = ""


@dataclass(frozen=True)
class BatchRecord:
    """One batch: from the feeder's drop (or the line's next-batch signal) to its end."""

    number: int
    started_at: float
    ended_at: float | None = None
    end_reason: str = ""
    impurities_at_start: int | None = None
    impurities_left: int | None = None
    items_at_start: int | None = None


@dataclass(frozen=True)
class AlarmRecord:
    """An alarm as the operator sees it; ``needs_ack`` alarms hold the loop until acknowledged."""

    id: int
    code: str
    severity: str
    message: str
    raised_at: float
    needs_ack: bool
    acknowledged_at: float | None = None


@dataclass(frozen=True)
class RunInfo:
    """What a run was: recipe, model, cell, operator, seed, when it started and ended and why."""

    recipe_name: str
    recipe_path: str
    recipe_sha256: str
    policy: str
    model_sha256: str
    cell: str
    operator: str
    seed: int | None
    dry_run: bool
    started_at: float
    id: int | None = None
    ended_at: float | None = None
    end_reason: str = ""
    summary: str = ""

    @property
    def finished(self) -> bool:
        return self.ended_at is not None


_SQL_TYPES = {"bool": "INTEGER", "int": "INTEGER", "float": "REAL", "str": "TEXT"}


def _base_type(field: dataclasses.Field) -> str:
    """'float' for a field annotated 'float | None' (annotations are strings here)."""
    return str(field.type).split("|")[0].strip()


def _columns(record_type: type) -> list[tuple[str, str]]:
    return [(f.name, _SQL_TYPES.get(_base_type(f), "TEXT")) for f in dataclasses.fields(record_type)]


def _schema() -> str:
    cycle_cols = ",\n  ".join(f"{n} {t}" for n, t in _columns(CycleRecord))
    return f"""
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  recipe_name TEXT NOT NULL, recipe_path TEXT NOT NULL, recipe_sha256 TEXT NOT NULL,
  policy TEXT NOT NULL, model_sha256 TEXT NOT NULL, cell TEXT NOT NULL, operator TEXT NOT NULL,
  seed INTEGER, dry_run INTEGER NOT NULL, started_at REAL NOT NULL,
  ended_at REAL, end_reason TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS batches (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs(id), number INTEGER NOT NULL,
  started_at REAL NOT NULL, ended_at REAL, end_reason TEXT NOT NULL DEFAULT '',
  impurities_at_start INTEGER, impurities_left INTEGER, items_at_start INTEGER,
  UNIQUE (run_id, number));
CREATE TABLE IF NOT EXISTS cycles (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  {cycle_cols},
  UNIQUE (run_id, number));
CREATE TABLE IF NOT EXISTS alarms (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  code TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL,
  raised_at REAL NOT NULL, needs_ack INTEGER NOT NULL, acknowledged_at REAL);
CREATE INDEX IF NOT EXISTS cycles_run ON cycles(run_id, number);
CREATE INDEX IF NOT EXISTS alarms_run ON alarms(run_id);
"""


def default_db_path() -> Path:
    """The run log in the user's data directory: $XDG_DATA_HOME/sorter/runs.sqlite."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sorter" / "runs.sqlite"


class RunLog:
    """A connection to the run log; safe to share between the loop's worker thread and readers."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._init_schema()
        except (OSError, sqlite3.Error) as exc:
            raise RunLogError(f"cannot open the run log {self.path}: {exc}; check the path and that the "
                              "folder is writable, or pass another with --db") from None
        self._lock = threading.Lock()

    def _init_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RunLogError(f"{self.path} was written by a newer sorter (schema {version}); upgrade sorter")
        self._db.executescript(_schema())
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def start_run(self, info: RunInfo) -> int:
        row = {k: v for k, v in dataclasses.asdict(info).items() if k not in ("id", "ended_at")}
        with self._tx() as db:
            return _insert(db, "runs", row)

    def end_run(self, run_id: int, reason: str, summary: dict | None = None) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET ended_at=?, end_reason=?, summary=? WHERE id=?",
                       (time.time(), reason, json.dumps(summary or {}), run_id))

    def start_batch(self, run_id: int, batch: BatchRecord) -> int:
        with self._tx() as db:
            return _insert(db, "batches", {"run_id": run_id, **dataclasses.asdict(batch)})

    def end_batch(self, run_id: int, number: int, reason: str, impurities_left: int | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE batches SET ended_at=?, end_reason=?, impurities_left=? "
                       "WHERE run_id=? AND number=?", (time.time(), reason, impurities_left, run_id, number))

    def record_cycle(self, run_id: int, cycle: CycleRecord) -> None:
        """Commit one cycle; once this returns the cycle survives a crash."""
        with self._tx() as db:
            _insert(db, "cycles", {"run_id": run_id, **dataclasses.asdict(cycle)})

    def raise_alarm(self, run_id: int, code: str, severity: str, message: str, needs_ack: bool,
                    raised_at: float | None = None) -> AlarmRecord:
        raised = time.time() if raised_at is None else raised_at
        row = {"run_id": run_id, "code": code, "severity": severity, "message": message,
               "raised_at": raised, "needs_ack": needs_ack}
        with self._tx() as db:
            alarm_id = _insert(db, "alarms", row)
        return AlarmRecord(alarm_id, code, severity, message, raised, needs_ack)

    def acknowledge_alarm(self, alarm_id: int, at: float | None = None) -> None:
        with self._tx() as db:
            db.execute("UPDATE alarms SET acknowledged_at=? WHERE id=? AND acknowledged_at IS NULL",
                       (time.time() if at is None else at, alarm_id))

    def runs(self, limit: int = 50) -> list[RunInfo]:
        """The most recent runs, newest first."""
        rows = self._query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return [_from_row(RunInfo, r) for r in rows]

    def run(self, run_id: int) -> RunInfo:
        rows = self._query("SELECT * FROM runs WHERE id=?", (run_id,))
        if not rows:
            raise RunLogError(f"no run {run_id} in {self.path}; `sorter runs list` shows the recorded runs")
        return _from_row(RunInfo, rows[0])

    def cycles(self, run_id: int) -> list[CycleRecord]:
        rows = self._query("SELECT * FROM cycles WHERE run_id=? ORDER BY number", (run_id,))
        return [_from_row(CycleRecord, r) for r in rows]

    def batches(self, run_id: int) -> list[BatchRecord]:
        rows = self._query("SELECT * FROM batches WHERE run_id=? ORDER BY number", (run_id,))
        return [_from_row(BatchRecord, r) for r in rows]

    def alarms(self, run_id: int) -> list[AlarmRecord]:
        rows = self._query("SELECT * FROM alarms WHERE run_id=? ORDER BY id", (run_id,))
        return [_from_row(AlarmRecord, r) for r in rows]

    def export_csv(self, run_id: int, stream: IO[str]) -> int:
        """Write the run's cycles as CSV (one row per cycle, a header first); returns the row count."""
        self.run(run_id)
        names = [f.name for f in dataclasses.fields(CycleRecord)]
        writer = csv.writer(stream)
        writer.writerow(names)
        cycles = self.cycles(run_id)
        for c in cycles:
            writer.writerow(["" if getattr(c, n) is None else getattr(c, n) for n in names])
        return len(cycles)

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._db.cursor()
            cur.row_factory = sqlite3.Row
            return cur.execute(sql, params).fetchall()


def _insert(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cur = db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))
    return int(cur.lastrowid)


def _from_row(record_type: type, row: sqlite3.Row) -> Any:
    """Build a record from a row, converting SQLite integers back to bools where the record says so."""
    kwargs = {}
    keys = set(row.keys())
    for f in dataclasses.fields(record_type):
        if f.name not in keys:
            continue
        value = row[f.name]
        if value is not None and _base_type(f) == "bool":
            value = bool(value)
        kwargs[f.name] = value
    return record_type(**kwargs)
