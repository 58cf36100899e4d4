"""`sorter teach` on a real cell: frames come through the RealSense adapter (pyrealsense2's software
device here), and the taught look flags an odd block that the clean frames never showed."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from sorter.cell.realsense import RealSenseCamera
from sorter.commands.perception import teach_command
from sorter.perception.appearance import AppearanceModel
from sorter.perception.attention import Attender
from sorter.perception.heightmap import compute_heightmaps
from sorter.recipe import load_recipe
from tests.hardware.rs_software import SoftwareCamera
from tests.loop.test_dry_run_hardware import SERIAL, _hardware_recipe, paint_scene

pytest.importorskip("pyrealsense2")


@pytest.fixture
def line_recipe(tmp_path):
    yield from _hardware_recipe(tmp_path, {})


@pytest.fixture
def camera():
    try:
        cam = SoftwareCamera(serial=SERIAL)
    except Exception as exc:  # the SDK imports but cannot create devices without libusb
        pytest.skip(f"RealSense software device unavailable: {exc}")
    yield cam
    cam.stop()


def test_teach_from_the_real_camera_path_flags_an_unseen_look(line_recipe, camera, tmp_path):
    recipe, centre, pose = line_recipe
    paint_scene(camera, centre, pose, odd_rgb=None)
    camera.start()
    out = tmp_path / "line.appearance.npz"
    args = argparse.Namespace(recipe=str(recipe.path), frames=3, interval=0.0, seed=0, output=str(out))
    assert teach_command(args, camera_devices=camera.devices) == 0
    model = AppearanceModel.load(out)
    assert model.metadata["scenario"] == "camera"

    paint_scene(camera, centre, pose)
    with RealSenseCamera(recipe.camera, devices=camera.devices) as cam:
        hm = compute_heightmaps(cam.read(timeout=2.0), pose, recipe.workspace.grid())
    novelty = model.novelty_map(hm)
    rows, cols = recipe.workspace.grid().cell_of(centre[0] + 0.02, centre[1] + 0.02)
    blue_r, blue_c = recipe.workspace.grid().cell_of(centre[0], centre[1] - 0.06)
    assert np.nanmax(novelty[rows - 4:rows + 5, cols - 4:cols + 5]) > 0, "the red block looks novel"
    assert not np.nanmax(novelty[blue_r - 4:blue_r + 5, blue_c - 4:blue_c + 5]) > 0, "product looks familiar"
    att = Attender(load_recipe(recipe.path), model).attend(hm)
    assert att.mode == "target"
