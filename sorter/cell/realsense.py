"""Intel RealSense camera (pyrealsense2): aligned, filtered RGB-D frames from a background grab thread.

Depth is filtered in librealsense's documented order (depth to disparity, spatial, temporal, disparity to
depth, hole filling; each step as the recipe enables it), then aligned to the colour stream, so every frame
has the colour stream's intrinsics, like the simulated camera's. A grab thread keeps the newest frame, so
``read_latest`` never blocks; repeated timeouts trigger a hardware reset and a restart of the stream.
pyrealsense2 is imported only when a camera is opened or listed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sorter.cell.base import Camera, CameraDisconnected, CameraError, CameraTimeout, RGBDFrame
from sorter.geometry import Intrinsics
from sorter.recipe import CameraSpec, DepthFilters

log = logging.getLogger(__name__)

RESET_SETTLE = 3.0  # s to let a camera drop off the bus after a hardware reset before looking for it again
REENUMERATE_WAIT = 15.0  # s to wait for it to come back


def import_pyrealsense2():
    """The pyrealsense2 module, or a CameraError that says what to install."""
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise CameraError(_sdk_hint(exc)) from None
    return rs


def _sdk_hint(exc: ImportError) -> str:
    if "libusb" in str(exc):
        return (f"the RealSense SDK cannot load libusb ({exc}); install the system library with "
                "'sudo apt-get install libusb-1.0-0' (installer/install.sh does this)")
    return (f"the RealSense SDK is not installed ({exc}); install it with 'pip install pyrealsense2' in the "
            "sorter environment (installer/install.sh does this)")


@dataclass(frozen=True)
class RealSenseInfo:
    """One connected camera as the SDK reports it."""

    name: str
    serial: str
    firmware: str
    usb: str  # USB type descriptor, e.g. "3.2"; empty when the SDK does not say

    @property
    def on_usb2(self) -> bool:
        return self.usb.startswith("2")


DeviceSource = Callable[[], Sequence[object]]


def list_devices(devices: DeviceSource | None = None) -> list[RealSenseInfo]:
    """Connected RealSense cameras; an empty list when none is found.

    ``devices`` returns pyrealsense2 device objects; by default the SDK's context is queried."""
    rs = import_pyrealsense2()
    found = devices() if devices is not None else rs.context().query_devices()
    return [_describe(rs, dev) for dev in found]


def _describe(rs, device) -> RealSenseInfo:
    def info(key) -> str:
        return device.get_info(key) if device.supports(key) else ""

    return RealSenseInfo(info(rs.camera_info.name), info(rs.camera_info.serial_number),
                         info(rs.camera_info.firmware_version), info(rs.camera_info.usb_type_descriptor))


def depth_filters(rs, spec: DepthFilters) -> list:
    """Processing blocks in librealsense's documented order, for the filters the recipe enables."""
    blocks = []
    if spec.spatial or spec.temporal:
        blocks.append(rs.disparity_transform(True))
        if spec.spatial:
            blocks.append(rs.spatial_filter())
        if spec.temporal:
            blocks.append(rs.temporal_filter())
        blocks.append(rs.disparity_transform(False))
    if spec.hole_filling:
        blocks.append(rs.hole_filling_filter())
    return blocks


@dataclass
class CameraHealth:
    """Counters the GUI and the run log can show."""

    frames: int = 0
    timeouts: int = 0
    reconnects: int = 0
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


class RealSenseCamera(Camera):
    """A RealSense D400 camera chosen by serial number (``camera.serial``; optional with one camera).

    ``devices`` returns the pyrealsense2 devices to choose from (default: the SDK context's); the pipeline is
    bound to the chosen device, so a software device or a recording can stand in for a camera."""

    def __init__(self, spec: CameraSpec, *, devices: DeviceSource | None = None,
                 reset_settle: float = RESET_SETTLE, reenumerate_wait: float = REENUMERATE_WAIT):
        if spec.kind != "realsense":
            raise CameraError(f"camera.kind is '{spec.kind}'; the RealSense adapter needs 'realsense'")
        self.spec = spec
        self.health = CameraHealth()
        self._devices = devices
        self._reset_settle, self._reenumerate_wait = reset_settle, reenumerate_wait
        self._rs = None
        self._ctx = None
        self._serial: str | None = None
        self._pipeline = None
        self._device = None
        self._filters: list = []
        self._align = None
        self._scale = 0.0
        self._intrinsics: Intrinsics | None = None
        self._cond = threading.Condition()
        self._latest: RGBDFrame | None = None
        self._latest_at = 0.0
        self._sequence = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def serial(self) -> str | None:
        return self._serial

    @property
    def depth_scale(self) -> float:
        """Metres per depth unit, as read from the device."""
        return self._scale

    @property
    def intrinsics(self) -> Intrinsics:
        if self._intrinsics is None:
            raise CameraDisconnected("the RealSense camera is not connected; call connect() first")
        return self._intrinsics

    def connect(self) -> None:
        if self._thread is not None:
            return
        self._rs = import_pyrealsense2()
        self._ctx = self._rs.context()
        self._device = self._select_device()
        self._serial = self._device.get_info(self._rs.camera_info.serial_number)
        self._start_pipeline()
        self._stop.clear()
        self._thread = threading.Thread(target=self._grab_loop, name=f"realsense-{self._serial}", daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.spec.timeout + self._reenumerate_wait)
            self._thread = None
        self._stop_pipeline()
        self._intrinsics = None

    def read(self, timeout: float = 1.0) -> RGBDFrame:
        self._require_connected()
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = self._sequence
            while self._sequence == seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CameraTimeout(self._timeout_message(f"no new frame within {timeout:.2f} s"))
                self._cond.wait(remaining)
            return self._latest

    def read_latest(self, max_age: float = 0.5) -> RGBDFrame:
        self._require_connected()
        with self._cond:
            frame, arrived = self._latest, self._latest_at
        if frame is None:
            raise CameraTimeout(self._timeout_message("no frame received yet"))
        age = time.monotonic() - arrived
        if age > max_age:
            what = f"the newest frame is {age:.2f} s old (limit {max_age:.2f} s)"
            raise CameraTimeout(self._timeout_message(what))
        return frame

    def _require_connected(self) -> None:
        if self._thread is None:
            raise CameraDisconnected("the RealSense camera is not connected; call connect() first")

    def _timeout_message(self, what: str) -> str:
        extra = f"; last error: {self.health.last_error}" if self.health.last_error else ""
        return (f"RealSense {self._serial}: {what} ({self.health.timeouts} timeouts, "
                f"{self.health.reconnects} resets){extra}; check the USB 3 cable and port")

    def _select_device(self):
        rs = self._rs
        devices = list(self._devices() if self._devices is not None else self._ctx.query_devices())
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        wanted = self.spec.serial
        if not devices:
            raise CameraDisconnected(
                "no RealSense camera found; check the USB cable (a USB 3 port), that the udev rules are "
                "installed (installer/install.sh), and run 'sorter devices'")
        if wanted is None:
            if len(devices) > 1:
                raise CameraError(f"{len(devices)} RealSense cameras connected ({', '.join(serials)}); set "
                                  "camera.serial in the recipe to choose one")
            return devices[0]
        if wanted not in serials:
            raise CameraDisconnected(f"RealSense {wanted} (camera.serial) not found; connected: "
                                     f"{', '.join(serials)}; fix camera.serial or plug the camera in")
        return devices[serials.index(wanted)]

    def _start_pipeline(self) -> None:
        rs, spec = self._rs, self.spec
        pipeline = rs.pipeline(self._ctx)
        if hasattr(pipeline, "set_device"):
            pipeline.set_device(self._device)
        config = rs.config()
        config.enable_device(self._serial)
        config.enable_stream(rs.stream.depth, spec.width, spec.height, rs.format.z16, spec.fps)
        config.enable_stream(rs.stream.color, spec.width, spec.height, rs.format.rgb8, spec.fps)
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise CameraError(
                f"RealSense {self._serial} cannot stream depth and colour at {spec.width}x{spec.height} "
                f"{spec.fps} fps ({exc}); use a mode the camera supports (camera.width/height/fps) and a "
                "USB 3 port") from None
        self._scale = profile.get_device().first_depth_sensor().get_depth_scale()
        color = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        self._intrinsics = Intrinsics(color.width, color.height, color.fx, color.fy, color.ppx, color.ppy)
        self._filters = depth_filters(rs, spec.filters)
        self._align = rs.align(rs.stream.color)
        self._pipeline = pipeline

    def _stop_pipeline(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError as exc:
                log.debug("stopping the RealSense pipeline: %s", exc)
            self._pipeline = None

    def _grab_loop(self) -> None:
        timeout_ms = int(self.spec.timeout * 1000)
        misses = 0
        while not self._stop.is_set():
            if self._pipeline is None:
                self._restart()
                continue
            ok, frames = self._pipeline.try_wait_for_frames(timeout_ms)
            if not ok:
                misses += 1
                self.health.timeouts += 1
                if misses >= max(1, self.spec.retries):
                    misses = 0
                    self._restart()
                continue
            misses = 0
            try:
                frame = self._convert(frames)
            except (RuntimeError, ValueError) as exc:
                self._record_error(f"frame processing failed: {exc}")
                continue
            if frame is not None:
                self._publish(frame)

    def _convert(self, frames) -> RGBDFrame | None:
        processed = frames
        for block in self._filters:
            processed = block.process(processed)
        aligned = self._align.process(processed.as_frameset())
        depth_frame, color_frame = aligned.get_depth_frame(), aligned.get_color_frame()
        if not depth_frame or not color_frame:
            return None
        depth = np.asanyarray(depth_frame.get_data()).astype(np.float32) * np.float32(self._scale)
        color = np.array(color_frame.get_data(), dtype=np.uint8, copy=True)
        return RGBDFrame(color=color, depth=depth, intrinsics=self._intrinsics,
                         timestamp=color_frame.get_timestamp() / 1000.0, sequence=self._sequence + 1)

    def _publish(self, frame: RGBDFrame) -> None:
        with self._cond:
            self._latest = frame
            self._latest_at = time.monotonic()
            self._sequence = frame.sequence
            self.health.frames += 1
            self._cond.notify_all()

    def _restart(self) -> None:
        """Reset the camera and start streaming again; errors are recorded and retried on the next call."""
        self.health.reconnects += 1
        log.warning("RealSense %s: no frames, resetting the camera", self._serial)
        self._stop_pipeline()
        self._hardware_reset()
        try:
            self._device = self._wait_for_device()
            self._start_pipeline()
            self.health.last_error = None
        except CameraError as exc:
            self._record_error(str(exc))
            self._stop.wait(self.spec.timeout)

    def _hardware_reset(self) -> None:
        try:
            self._device.hardware_reset()
        except RuntimeError as exc:
            self._record_error(f"hardware reset failed: {exc}")
            return
        self._stop.wait(self._reset_settle)

    def _wait_for_device(self):
        deadline = time.monotonic() + self._reenumerate_wait
        while True:
            try:
                return self._select_device()
            except CameraError:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise
                self._stop.wait(0.2)

    def _record_error(self, message: str) -> None:
        log.warning("RealSense %s: %s", self._serial, message)
        self.health.last_error = message
        self.health.errors = (self.health.errors + [message])[-20:]
