"""The hand-eye calibration file: where the camera sits in the robot base frame, and how well that is known.

A recipe names the file (``calibration:``, relative to the recipe). It is YAML (JSON is accepted too)::

    format: sorter-hand-eye/1
    camera_in_base:            # 4x4 pose of the camera's optical frame (z forward, x right, y down), metres
      - [0.0, -1.0, 0.0, 0.524]
      - [-1.0, 0.0, 0.0, 0.000]
      - [0.0, 0.0, -1.0, 0.720]
      - [0.0, 0.0, 0.0, 1.0]
    timestamp: "2026-11-21T10:42:00+00:00"   # when the calibration was solved (ISO 8601)
    residual_m: 0.0011         # RMS position residual of the solve, metres
    camera_serial: "841612070098"            # optional: the camera it was made with
    samples: 15                # optional: robot poses used

Anything else in the file is kept by whoever wrote it and ignored here. The simulated cell needs no file:
its camera pose is the recipe's ``camera.pose``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from sorter.errors import SorterError
from sorter.geometry import Pose

FORMAT = "sorter-hand-eye/1"
ROTATION_TOLERANCE = 1e-4  # max |R^T R - I| entry of a valid rotation block


class CalibrationFileError(SorterError):
    """The hand-eye calibration file is missing, unreadable or does not describe a valid pose."""


@dataclass(frozen=True)
class HandEyeCalibration:
    """A solved hand-eye calibration: camera pose in the robot base frame and its quality."""

    camera_in_base: Pose
    timestamp: dt.datetime
    residual: float  # m, RMS position residual
    camera_serial: str | None = None
    samples: int | None = None


def load_camera_pose(recipe) -> Pose:
    """The camera's pose in the robot base frame for this recipe's cell.

    Simulated cameras use the recipe's ``camera.pose``; a real camera needs the recipe's calibration file,
    made with the same camera when both name a serial number."""
    if recipe.camera.kind == "sim":
        return recipe.camera.pose.pose()
    if not recipe.calibration:
        where = recipe.path or "the recipe"
        raise CalibrationFileError(f"{where}: 'calibration' names no hand-eye calibration file; run the "
                                   "calibration wizard and set 'calibration:' to the file it saves")
    path = recipe.resolve(recipe.calibration)
    calibration = load_calibration(path)
    wanted = recipe.camera.serial
    if wanted and calibration.camera_serial and calibration.camera_serial != wanted:
        raise CalibrationFileError(f"{path}: made with camera {calibration.camera_serial}, but the recipe "
                                   f"uses camera {wanted}; calibrate again with this camera")
    return calibration.camera_in_base


def load_calibration(path: str | Path) -> HandEyeCalibration:
    """Read and check a calibration file; every problem names the file and what to do."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationFileError(f"{path}: hand-eye calibration file not found; run the calibration wizard "
                                   "or fix 'calibration:' in the recipe") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CalibrationFileError(f"{path}: cannot read the hand-eye calibration ({exc}); calibrate "
                                   "again") from None
    if not isinstance(data, dict):
        raise CalibrationFileError(f"{path}: expected a mapping with 'camera_in_base', got "
                                   f"{type(data).__name__}; calibrate again")
    return _parse(data, path)


def save_calibration(path: str | Path, calibration: HandEyeCalibration) -> Path:
    """Write the file atomically (a crash never leaves half a calibration behind); returns the path."""
    path = Path(path)
    data = {
        "format": FORMAT,
        "camera_in_base": [[float(v) for v in row] for row in calibration.camera_in_base.matrix],
        "timestamp": calibration.timestamp.isoformat(),
        "residual_m": float(calibration.residual),
    }
    if calibration.camera_serial:
        data["camera_serial"] = calibration.camera_serial
    if calibration.samples is not None:
        data["samples"] = int(calibration.samples)
    text = "# sorter hand-eye calibration: camera pose in the robot base frame\n" + yaml.safe_dump(
        data, sort_keys=False, default_flow_style=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _parse(data: dict, path: Path) -> HandEyeCalibration:
    def bad(field: str, what: str) -> CalibrationFileError:
        return CalibrationFileError(f"{path}: {field}: {what}; calibrate again")

    if data.get("format") != FORMAT:
        raise bad("format", f"expected '{FORMAT}', got {data.get('format')!r}")
    pose = _pose(data.get("camera_in_base"), bad)
    timestamp = _timestamp(data.get("timestamp"), bad)
    residual = data.get("residual_m")
    if isinstance(residual, bool) or not isinstance(residual, int | float) or not math.isfinite(residual) \
            or residual < 0:
        raise bad("residual_m", f"expected a non-negative number of metres, got {residual!r}")
    serial = data.get("camera_serial")
    samples = data.get("samples")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise bad("samples", f"expected a positive count, got {samples!r}")
    serial = None if serial is None else str(serial)
    return HandEyeCalibration(pose, timestamp, float(residual), serial, samples)


def _pose(value, bad) -> Pose:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise bad("camera_in_base", "expected a 4x4 matrix of numbers") from None
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise bad("camera_in_base", f"expected a finite 4x4 matrix, got shape {m.shape}")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise bad("camera_in_base", "the last row must be [0, 0, 0, 1]")
    r = m[:3, :3]
    if np.max(np.abs(r.T @ r - np.eye(3))) > ROTATION_TOLERANCE or np.linalg.det(r) <= 0:
        raise bad("camera_in_base", "the upper-left 3x3 block is not a rotation")
    return Pose(m)


def _timestamp(value, bad) -> dt.datetime:
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError:
            raise bad("timestamp", f"expected an ISO 8601 date and time, got {value!r}") from None
    else:
        raise bad("timestamp", f"expected an ISO 8601 date and time, got {value!r}")
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
