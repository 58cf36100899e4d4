"""The hand-eye calibration file: round trip, the recipe's camera pose, every way the file can be wrong."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sorter.cell.hand_eye_store import (
    CalibrationFileError,
    HandEyeCalibration,
    load_calibration,
    load_camera_pose,
    save_calibration,
)
from sorter.geometry import Pose
from sorter.recipe import load_recipe

ROOT = Path(__file__).parents[2]
CAMERA = Pose.look_at((0.524, 0.03, 0.72), (0.524, 0.0, 0.0))
STAMP = dt.datetime(2026, 11, 21, 10, 42, tzinfo=dt.UTC)


def _calibration(serial: str | None = "841612070098") -> HandEyeCalibration:
    return HandEyeCalibration(CAMERA, STAMP, 0.0011, serial, 15)


def _hardware_recipe(folder: Path, calibration: str | None = "hand_eye.yaml", serial: str | None = None):
    data = yaml.safe_load((ROOT / "recipes" / "toy-blocks.yaml").read_text())
    data["camera"] = {"kind": "realsense", **({"serial": serial} if serial else {})}
    data["robot"].update(kind="ur", host="192.168.1.10")
    data["gripper"].update(kind="robotiq-2f85")
    if calibration:
        data["calibration"] = calibration
    path = folder / "cell.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path)


def test_round_trip_keeps_pose_time_and_quality(tmp_path: Path) -> None:
    path = save_calibration(tmp_path / "cal" / "hand_eye.yaml", _calibration())
    loaded = load_calibration(path)
    assert np.allclose(loaded.camera_in_base.matrix, CAMERA.matrix, atol=1e-12)
    assert (loaded.timestamp, loaded.residual, loaded.camera_serial, loaded.samples) == (
        STAMP, 0.0011, "841612070098", 15)
    assert [p.name for p in path.parent.iterdir()] == ["hand_eye.yaml"]  # no temporary file left


def test_simulated_recipe_uses_its_camera_pose() -> None:
    recipe = load_recipe(ROOT / "recipes" / "toy-blocks.yaml")
    assert np.array_equal(load_camera_pose(recipe).matrix, recipe.camera.pose.pose().matrix)


def test_hardware_recipe_reads_the_file_next_to_it(tmp_path: Path) -> None:
    save_calibration(tmp_path / "hand_eye.yaml", _calibration())
    pose = load_camera_pose(_hardware_recipe(tmp_path, serial="841612070098"))
    assert np.allclose(pose.matrix, CAMERA.matrix)


def test_json_files_are_accepted(tmp_path: Path) -> None:
    data = {"format": "sorter-hand-eye/1", "camera_in_base": CAMERA.matrix.tolist(),
            "timestamp": "2026-11-21T10:42:00", "residual_m": 0.002}
    path = tmp_path / "hand_eye.json"
    path.write_text(json.dumps(data))
    loaded = load_calibration(path)
    assert loaded.timestamp == STAMP and loaded.camera_serial is None


def test_missing_file_and_missing_setting_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CalibrationFileError, match=r"hand_eye.yaml: hand-eye calibration file not found"):
        load_camera_pose(_hardware_recipe(tmp_path))
    with pytest.raises(CalibrationFileError, match=r"cell.yaml: 'calibration' names no hand-eye"):
        load_camera_pose(_hardware_recipe(tmp_path, calibration=None))


def test_calibration_of_another_camera_is_refused(tmp_path: Path) -> None:
    save_calibration(tmp_path / "hand_eye.yaml", _calibration(serial="111"))
    with pytest.raises(CalibrationFileError, match="made with camera 111, but the recipe uses camera 222"):
        load_camera_pose(_hardware_recipe(tmp_path, serial="222"))


def _write(tmp_path: Path, **changes) -> Path:
    data = {"format": "sorter-hand-eye/1", "camera_in_base": CAMERA.matrix.tolist(),
            "timestamp": STAMP.isoformat(), "residual_m": 0.001}
    data.update(changes)
    path = tmp_path / "hand_eye.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"camera_in_base": np.diag([1.0, 1.0, 2.0, 1.0]).tolist()}, "camera_in_base: .*not a rotation"),
    ({"camera_in_base": np.diag([1.0, 1.0, -1.0, 1.0]).tolist()}, "camera_in_base: .*not a rotation"),
    ({"camera_in_base": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}, r"camera_in_base: .*shape \(3, 3\)"),
    ({"camera_in_base": "identity"}, "camera_in_base: expected"),
    ({"camera_in_base": (np.eye(4) + np.eye(4, k=-3)).tolist()}, "camera_in_base: the last row"),
    ({"format": "v0"}, "format: expected 'sorter-hand-eye/1'"),
    ({"timestamp": "yesterday"}, "timestamp: expected an ISO 8601"),
    ({"residual_m": -0.1}, "residual_m: expected a non-negative"),
    ({"samples": 0}, "samples: expected a positive count"),
])
def test_invalid_content_names_the_field(tmp_path: Path, changes: dict, message: str) -> None:
    path = _write(tmp_path, **changes)
    with pytest.raises(CalibrationFileError, match=rf"{path}: {message}"):
        load_calibration(path)


def test_unparsable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hand_eye.yaml"
    path.write_text("camera_in_base: [[1, 0\n")
    with pytest.raises(CalibrationFileError, match=rf"{path}: cannot read"):
        load_calibration(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(CalibrationFileError, match="expected a mapping"):
        load_calibration(path)
