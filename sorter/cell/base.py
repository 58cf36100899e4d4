"""The hardware boundary: camera and robot interfaces, the data they exchange, and typed errors.

The simulated cell and the real adapters (RealSense, UR) implement exactly these interfaces, so the pick
loop, calibration and the GUI never know which cell they drive.
"""

from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass

import numpy as np

from sorter.errors import SorterError
from sorter.geometry import Intrinsics


class CellError(SorterError):
    """Base of every error raised at the hardware boundary; the message says what to do."""


class CameraError(CellError):
    """The camera cannot be opened or configured."""


class CameraTimeout(CameraError):
    """No frame arrived within the allowed time."""


class CameraDisconnected(CameraError):
    """The camera is not connected (never connected, unplugged or closed)."""


class RobotError(CellError):
    """The robot refused or failed a command."""


class RobotDisconnected(RobotError):
    """The robot controller cannot be reached."""


class ProtectiveStop(RobotError):
    """The robot is in protective stop; an operator must acknowledge before motion resumes."""


class EmergencyStop(RobotError):
    """The emergency stop is engaged; release it and acknowledge before motion resumes."""


class GripperError(RobotError):
    """The gripper did not respond or reported a fault."""


@dataclass(frozen=True)
class RGBDFrame:
    """One aligned colour + depth capture. Depth is in metres, 0 where invalid."""

    color: np.ndarray  # uint8 RGB, HxWx3
    depth: np.ndarray  # float32 metres, HxW, 0 = no reading
    intrinsics: Intrinsics
    timestamp: float  # seconds; simulated seconds on the simulated cell
    sequence: int

    def __post_init__(self) -> None:
        h, w = self.intrinsics.height, self.intrinsics.width
        if self.color.shape != (h, w, 3) or self.color.dtype != np.uint8:
            raise ValueError(f"colour must be uint8 {h}x{w}x3, got {self.color.dtype} {self.color.shape}")
        if self.depth.shape != (h, w) or self.depth.dtype != np.float32:
            raise ValueError(f"depth must be float32 {h}x{w}, got {self.depth.dtype} {self.depth.shape}")


class Camera(abc.ABC):
    """An RGB-D camera delivering aligned frames; use as a context manager."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device; raises CameraError with what to check when it cannot."""

    @abc.abstractmethod
    def read(self, timeout: float = 1.0) -> RGBDFrame:
        """Wait for the next frame; raises CameraTimeout after ``timeout`` seconds."""

    @abc.abstractmethod
    def read_latest(self, max_age: float = 0.5) -> RGBDFrame:
        """Return the newest frame without waiting; raises CameraTimeout if it is older than ``max_age``."""

    @property
    @abc.abstractmethod
    def intrinsics(self) -> Intrinsics:
        """Intrinsics of the colour stream that depth is aligned to."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the device; safe to call twice."""

    def __enter__(self) -> Camera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


class ActionKind(enum.StrEnum):
    PUSH = "push"
    GRASP = "grasp"


@dataclass(frozen=True)
class Action:
    """A motion primitive in the robot base frame: position of the gripper centre (m), yaw (rad).

    For a push, ``angle`` is the push direction; for a grasp it is the direction across the jaws.
    """

    kind: ActionKind
    x: float
    y: float
    z: float
    angle: float

    def is_finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.x, self.y, self.z, self.angle))


@dataclass(frozen=True)
class Outcome:
    """What happened when an action was executed, read the way the real cell reads it."""

    executed: bool
    grasp_held: bool = False  # fingers stopped on something after closing and it stayed through lift
    finger_width: float = 0.0  # m, jaw opening after closing (grasp) or at the end (push)
    duration: float = 0.0  # s of modelled robot motion
    delivered: bool = False  # a held item was released over the reject bin
    error: str | None = None


class RobotStatus(enum.StrEnum):
    READY = "ready"
    MOVING = "moving"
    PROTECTIVE_STOP = "protective stop"
    EMERGENCY_STOP = "emergency stop"
    DISCONNECTED = "disconnected"


class Robot(abc.ABC):
    """An arm with a parallel gripper that executes push and grasp primitives; use as a context manager."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Connect to the controller and gripper; raises RobotError naming what to check."""

    @abc.abstractmethod
    def home(self) -> None:
        """Move to the home pose, out of the camera's view."""

    @abc.abstractmethod
    def execute(self, action: Action) -> Outcome:
        """Run one primitive; raises ProtectiveStop / EmergencyStop / RobotDisconnected on faults."""

    @abc.abstractmethod
    def status(self) -> RobotStatus:
        """Current state from the controller's safety and motion flags."""

    @abc.abstractmethod
    def recover(self) -> None:
        """Clear a protective stop after the operator acknowledged it; raises RobotError if it cannot."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop any motion now (decelerating); safe to call at any time."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the controller; safe to call twice."""

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
