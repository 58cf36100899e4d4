"""Dry run on the real-cell path: RealSense adapter on pyrealsense2's software device, UR adapter on ur_rtde
stand-ins (SDK boundary only), Robotiq on a loopback URCap. It captures, decides and records each action with
its safety verdict, and never sends a single motion command."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest
import yaml

from sorter.cell import ur
from sorter.cell.factory import open_cell
from sorter.cell.hand_eye_store import HandEyeCalibration, save_calibration
from sorter.geometry import Pose
from sorter.loop import BatchEnded, BatchStarted, CycleDone, LoopOptions, RunLimits
from sorter.recipe import load_recipe
from tests.hardware.fake_grippers import RobotiqURCapServer
from tests.hardware.fake_ur_rtde import Controller, install
from tests.hardware.rs_software import SoftwareCamera
from tests.loop.conftest import RECIPES, make_loop, wait_for

SERIAL = "841612070098"
CAMERA_HEIGHT = 0.70  # m above the table, looking straight down at the workspace centre


def paint_scene(camera: SoftwareCamera, centre_xy, pose: Pose, odd_rgb=(210, 45, 40)) -> None:
    """A grey table with blue blocks and one odd block (none when ``odd_rgb`` is None), 3 cm tall."""
    h, w = camera.height, camera.width
    k = camera.color_intrinsics
    depth = np.full((h, w), CAMERA_HEIGHT, np.float64)
    color = np.full((h, w, 3), (70, 72, 78), np.uint8)

    def block(dx: float, dy: float, rgb) -> None:
        pts = pose.inverse().apply(np.array([[centre_xy[0] + dx + sx, centre_xy[1] + dy + sy, 0.03]
                                             for sx in (-0.015, 0.015) for sy in (-0.015, 0.015)]))
        u = pts[:, 0] / pts[:, 2] * k.fx + k.ppx
        v = pts[:, 1] / pts[:, 2] * k.fy + k.ppy
        rows = slice(int(v.min()), int(v.max()) + 1)
        cols = slice(int(u.min()), int(u.max()) + 1)
        depth[rows, cols] = CAMERA_HEIGHT - 0.03
        color[rows, cols] = rgb

    for dx, dy in [(-0.08, -0.05), (0.0, -0.06), (0.07, 0.05), (-0.05, 0.08), (0.09, -0.08)]:
        block(dx, dy, (40, 90, 200))
    if odd_rgb is not None:
        block(0.02, 0.02, odd_rgb)
    camera.depth[:] = np.round(depth / camera.depth_units).astype(np.uint16)
    camera.color[:] = color


@pytest.fixture
def hardware_recipe(tmp_path):
    yield from _hardware_recipe(tmp_path, {})


@pytest.fixture
def operator_line_recipe(tmp_path):
    yield from _hardware_recipe(tmp_path, {"next_batch": {"signal": "operator"}})


@pytest.fixture
def controller(monkeypatch):
    c = Controller()
    install(monkeypatch, c)
    monkeypatch.setattr(ur, "UNLOCK_DELAY", 0.0)
    return c


def _hardware_recipe(tmp_path, loop_spec: dict):
    data = yaml.safe_load((RECIPES / "toy-blocks.yaml").read_text())
    data["loop"] = loop_spec
    urcap = RobotiqURCapServer()
    urcap.__enter__()
    centre = (sum(data["workspace"]["bounds"]["x"]) / 2, sum(data["workspace"]["bounds"]["y"]) / 2)
    pose = Pose.look_at((centre[0], centre[1], CAMERA_HEIGHT), (centre[0], centre[1], 0.0))
    save_calibration(tmp_path / "hand_eye.json", HandEyeCalibration(
        pose, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 0.001, SERIAL, 12))
    data["camera"] = {"kind": "realsense", "serial": SERIAL, "timeout": 2.0}
    data["calibration"] = "hand_eye.json"
    data["robot"].update(kind="ur", host="192.168.1.10")
    data["gripper"].update(kind="robotiq-2f85", host="127.0.0.1", port=urcap.port)
    path = tmp_path / "hardware.yaml"
    path.write_text(yaml.safe_dump(data))
    yield load_recipe(path), centre, pose
    urcap.__exit__(None, None, None)


def test_dry_run_on_the_real_cell_path_decides_and_never_moves(hardware_recipe, attender, runlog,
                                                              controller):
    recipe, centre, pose = hardware_recipe
    camera = SoftwareCamera(serial=SERIAL)
    paint_scene(camera, centre, pose)
    camera.start()
    try:
        with open_cell(recipe, dry_run=True, camera_devices=camera.devices) as cell:
            assert cell.sim is None
            loop = make_loop(recipe, cell, attender, runlog, limits=RunLimits(max_cycles=3),
                             options=LoopOptions(dry_run=True, unattended=True, frames=False))
            result = loop.run()
    finally:
        camera.stop()
    assert result.end_reason == "max cycles reached (3)" and result.fault is None
    cycles = runlog.cycles(loop.run_id)
    assert len(cycles) == 3 and not any(c.executed for c in cycles)
    decided = [c for c in cycles if c.action_kind]
    assert decided and all(c.outcome in ("dry-run", "refused") and c.safety_detail for c in decided)
    assert all(c.picked_impurity is None for c in cycles)
    red = (centre[0] + 0.02, centre[1] + 0.02)
    first = decided[0]
    assert first.action_kind == "grasp" and first.attention_mode == "target"
    assert np.hypot(first.x - red[0], first.y - red[1]) < 0.015
    assert 0.005 < first.z < 0.03
    assert controller.moves == []
    info = runlog.run(loop.run_id)
    assert info.cell == "hardware" and info.dry_run


def test_a_real_line_waits_for_the_operator_between_batches(operator_line_recipe, attender, runlog,
                                                            controller):
    """An empty table is clean at once; batch 2 starts only when the operator presses next batch."""
    recipe, _, _ = operator_line_recipe
    camera = SoftwareCamera(serial=SERIAL)
    camera.depth[:] = round(CAMERA_HEIGHT / camera.depth_units)
    camera.color[:] = (70, 72, 78)
    camera.start()
    seen = []
    try:
        with open_cell(recipe, dry_run=True, camera_devices=camera.devices) as cell:
            loop = make_loop(recipe, cell, attender, runlog, limits=RunLimits(max_cycles=4),
                             options=LoopOptions(dry_run=True, frames=False))
            events = loop.subscribe()
            loop.start()
            wait_for(events, lambda e: isinstance(e, BatchEnded), seen)
            waiting = [e for e in seen + _settle(events) if isinstance(e, BatchStarted | CycleDone)]
            loop.next_batch()
            second = wait_for(events, lambda e: isinstance(e, BatchStarted), seen)
            loop.stop("test over")
            assert loop.join(timeout=60)
    finally:
        camera.stop()
    assert [e.batch.number for e in waiting if isinstance(e, BatchStarted)] == [1]
    assert [e.record.batch for e in waiting if isinstance(e, CycleDone)] == [1]
    assert second.batch.number == 2 and controller.moves == []


def _settle(events) -> list:
    """Events arriving in the next half second: long enough for several cycles had the loop not waited."""
    out, deadline = [], time.monotonic() + 0.5
    while time.monotonic() < deadline:
        e = events.get(timeout=0.05)
        if e is not None:
            out.append(e)
    return out
