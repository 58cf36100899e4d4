"""A RealSense camera made of pyrealsense2's own software device: real SDK pipeline, synthetic frames.

The device has a depth sensor (Z16, with depth units and stereo baseline options like a D435) and a colour
sensor (RGB8); a feeder thread injects frames at the stream rate and can be paused to simulate a stall.
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

_pace = time.sleep  # bound at import: a test that patches time.sleep must not make the feeder spin


def import_rs():
    """pyrealsense2, or a skip naming the missing system library (anything else is a real failure)."""
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        if "libusb" in str(exc):
            pytest.skip(f"pyrealsense2 needs libusb-1.0-0 on this machine ({exc})")
        raise
    return rs


class SoftwareCamera:
    """A software RealSense device with a frame feeder; ``pause`` stops frames, ``resume`` restarts them."""

    def __init__(self, serial: str = "841612070098", width: int = 640, height: int = 480, fps: int = 30,
                 depth_units: float = 0.001, depth_fx: float = 600.0, color_fx: float = 615.0):
        rs = self.rs = import_rs()
        self.serial, self.width, self.height, self.fps = serial, width, height, fps
        self.depth_units = depth_units
        self.color_intrinsics = self._intrinsics(color_fx)
        dev = self.device = rs.software_device()
        dev.register_info(rs.camera_info.name, "Intel RealSense D435 (software)")
        dev.register_info(rs.camera_info.serial_number, serial)
        dev.register_info(rs.camera_info.firmware_version, "5.16.0.1")
        dev.register_info(rs.camera_info.usb_type_descriptor, "3.2")
        self.depth_sensor = dev.add_sensor("Stereo Module")
        self.color_sensor = dev.add_sensor("RGB Camera")
        self.depth_profile = self._add_stream(self.depth_sensor, rs.stream.depth, rs.format.z16, 2, 0,
                                              self._intrinsics(depth_fx))
        self.color_profile = self._add_stream(self.color_sensor, rs.stream.color, rs.format.rgb8, 3, 1,
                                              self.color_intrinsics)
        self.depth_sensor.add_read_only_option(rs.option.depth_units, depth_units)
        self.depth_sensor.add_read_only_option(rs.option.stereo_baseline, 50.0)  # mm, D435 baseline
        extrinsics = rs.extrinsics()
        extrinsics.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        extrinsics.translation = [0.015, 0.0, 0.0]
        self.depth_profile.register_extrinsics_to(self.color_profile, extrinsics)
        dev.create_matcher(rs.matchers.dlr_c)
        self.depth = np.zeros((height, width), np.uint16)
        self.color = np.zeros((height, width, 3), np.uint8)
        self._feeding = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_sent = 0

    def devices(self) -> list:
        return [self.device]

    def _intrinsics(self, f: float):
        i = self.rs.intrinsics()
        i.width, i.height, i.fx, i.fy = self.width, self.height, f, f
        i.ppx, i.ppy = self.width / 2 - 0.5, self.height / 2 - 0.5
        i.model, i.coeffs = self.rs.distortion.none, [0.0] * 5
        return i

    def _add_stream(self, sensor, stream, fmt, bpp, uid, intrinsics):
        vs = self.rs.video_stream()
        vs.type, vs.index, vs.uid, vs.fmt, vs.bpp = stream, 0, uid, fmt, bpp
        vs.width, vs.height, vs.fps, vs.intrinsics = self.width, self.height, self.fps, intrinsics
        return sensor.add_video_stream(vs, True).as_video_stream_profile()

    def start(self) -> None:
        self._feeding.set()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._feeding.clear()

    def resume(self) -> None:
        self._feeding.set()

    def stop(self) -> None:
        self._stop.set()
        self._feeding.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _feed(self) -> None:
        n = 0
        while not self._stop.is_set():
            self._feeding.wait()
            if self._stop.is_set():
                return
            stamp = time.time() * 1000.0
            self._inject(self.depth_sensor, self.depth_profile, self.depth, 2, stamp, n)
            self._inject(self.color_sensor, self.color_profile, self.color, 3, stamp, n)
            self.frames_sent += 1
            n += 1
            _pace(1.0 / self.fps)

    def _inject(self, sensor, profile, image, bpp, stamp, number) -> None:
        rs = self.rs
        f = rs.software_video_frame()
        f.pixels, f.bpp, f.stride = np.ascontiguousarray(image), bpp, self.width * bpp
        f.timestamp, f.domain = stamp, rs.timestamp_domain.system_time
        f.frame_number, f.profile = number, profile
        if bpp == 2:
            f.depth_units = self.depth_units
        with contextlib.suppress(RuntimeError):  # the adapter is restarting; a real camera drops frames too
            sensor.on_video_frame(f)
