"""The RealSense adapter on pyrealsense2's real pipeline, fed by the SDK's software device (no camera)."""

from __future__ import annotations

import builtins
import sys
import time

import numpy as np
import pytest

from sorter.cell.base import CameraDisconnected, CameraError, CameraTimeout
from sorter.cell.realsense import RealSenseCamera, list_devices
from sorter.recipe import CameraSpec, DepthFilters
from tests.hardware.rs_software import SoftwareCamera, import_rs

TABLE_MM = 700
HOLE = (slice(200, 230), slice(300, 330))  # rows, cols of missing depth in the raw image
CENTRE = (slice(120, 360), slice(160, 480))


def _spec(**overrides) -> CameraSpec:
    fields = {"kind": "realsense", "serial": "841612070098", "timeout": 0.5, "retries": 2}
    fields.update(overrides)
    return CameraSpec(**fields)


@pytest.fixture
def scene():
    cam = SoftwareCamera()
    cam.depth[:] = TABLE_MM
    cam.depth[HOLE] = 0
    cam.color[:] = (70, 72, 78)
    cam.color[100:140, 200:260] = (210, 45, 40)
    cam.start()
    yield cam
    cam.stop()


def _open(scene: SoftwareCamera, **overrides) -> RealSenseCamera:
    camera = RealSenseCamera(_spec(**overrides), devices=scene.devices, reset_settle=0.0,
                             reenumerate_wait=2.0)
    camera.connect()
    return camera


def test_frames_are_aligned_metric_and_hole_filled(scene) -> None:
    camera = _open(scene)
    try:
        for _ in range(3):  # let the temporal filter see a few frames
            frame = camera.read(timeout=3.0)
    finally:
        camera.disconnect()
    assert frame.color.dtype == np.uint8 and frame.depth.dtype == np.float32
    assert np.array_equal(frame.color, scene.color)
    assert (frame.intrinsics.fx, frame.intrinsics.cx) == (615.0, 319.5)  # colour stream, not depth (600)
    centre = frame.depth[CENTRE]
    assert np.count_nonzero(centre == 0) == 0
    assert abs(float(np.median(centre)) - TABLE_MM / 1000) < 0.002
    assert camera.depth_scale == pytest.approx(0.001)


def test_without_filters_the_hole_stays_invalid(scene) -> None:
    camera = _open(scene, filters=DepthFilters(spatial=False, temporal=False, hole_filling=False))
    try:
        frame = camera.read(timeout=3.0)
    finally:
        camera.disconnect()
    hole_area = 30 * 30
    assert np.count_nonzero(frame.depth[CENTRE] == 0) > 0.8 * hole_area
    valid = frame.depth[CENTRE][frame.depth[CENTRE] > 0]
    assert np.allclose(valid, TABLE_MM / 1000, atol=1e-4)


def test_depth_scale_is_read_from_the_device() -> None:
    cam = SoftwareCamera(depth_units=0.0001)
    cam.depth[:] = 7000
    cam.start()
    try:
        raw = DepthFilters(spatial=False, temporal=False, hole_filling=False)
        camera = RealSenseCamera(_spec(filters=raw), devices=cam.devices)
        camera.connect()
        frame = camera.read(timeout=3.0)
        camera.disconnect()
    finally:
        cam.stop()
    assert camera.depth_scale == pytest.approx(0.0001)
    assert abs(float(np.median(frame.depth[CENTRE])) - 0.7) < 1e-3


def test_read_latest_returns_at_once_and_refuses_stale_frames(scene) -> None:
    camera = _open(scene)
    try:
        first = camera.read(timeout=3.0)
        scene.pause()
        time.sleep(0.3)
        latest = camera.read_latest(max_age=10.0)
        with pytest.raises(CameraTimeout, match="old"):
            camera.read_latest(max_age=0.05)
    finally:
        camera.disconnect()
    assert latest.sequence >= first.sequence


def test_stalled_stream_is_reset_and_resumes(scene) -> None:
    camera = _open(scene, timeout=0.2, retries=2)
    try:
        before = camera.read(timeout=3.0)
        scene.pause()
        deadline = time.monotonic() + 10
        while camera.health.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(CameraTimeout, match="USB"):
            camera.read(timeout=0.1)
        scene.resume()
        after = camera.read(timeout=5.0)
    finally:
        camera.disconnect()
    assert camera.health.reconnects >= 1 and camera.health.timeouts >= 2
    assert any("hardware reset" in e for e in camera.health.errors)  # the software device cannot reset
    assert after.sequence > before.sequence
    assert np.array_equal(after.color, scene.color)


def test_camera_is_chosen_by_serial() -> None:
    a, b = SoftwareCamera(serial="111"), SoftwareCamera(serial="222")
    a.color[:], b.color[:] = 10, 200
    b.start()
    try:
        camera = RealSenseCamera(_spec(serial="222"), devices=lambda: [a.device, b.device])
        camera.connect()
        frame = camera.read(timeout=3.0)
        camera.disconnect()
        with pytest.raises(CameraError, match="111, 222"):
            RealSenseCamera(_spec(serial=None), devices=lambda: [a.device, b.device]).connect()
        with pytest.raises(CameraDisconnected, match="333.*not found.*111, 222"):
            RealSenseCamera(_spec(serial="333"), devices=lambda: [a.device, b.device]).connect()
    finally:
        b.stop()
    assert int(frame.color.mean()) == 200


def test_no_camera_and_unconnected_use_say_what_to_do() -> None:
    import_rs()
    camera = RealSenseCamera(_spec(), devices=list)
    with pytest.raises(CameraDisconnected, match="no RealSense camera found.*USB"):
        camera.connect()
    with pytest.raises(CameraDisconnected, match="connect"):
        camera.read_latest()
    camera.disconnect()
    camera.disconnect()


def test_list_devices_reports_serial_and_firmware() -> None:
    cam = SoftwareCamera(serial="841612070098")
    [info] = list_devices(cam.devices)
    assert (info.serial, info.firmware, info.usb, info.on_usb2) == ("841612070098", "5.16.0.1", "3.2", False)


def test_missing_sdk_names_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(CameraError, match="pip install pyrealsense2"):
        RealSenseCamera(_spec()).connect()


def test_missing_libusb_names_the_system_library(monkeypatch) -> None:
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "pyrealsense2":
            raise ImportError("libusb-1.0.so.0: cannot open shared object file: No such file or directory")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "pyrealsense2", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(CameraError, match="apt-get install libusb-1.0-0"):
        list_devices()
