"""Poses, camera intrinsics and the workspace grid: the one place where pixels meet metres.

Everything outside perception and policy speaks the robot base frame in metres and radians. Heightmap
cells are addressed as ``(row, col)`` with ``col`` growing with x and ``row`` growing with y, and a cell's
metric position is its centre. Rotation index ``i`` of the policy means the angle ``i * ROTATION_STEP``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

CELL_SIZE = 0.002  # m per heightmap cell (paper 2, section 3: 448 mm over 224 cells)
GRID_CELLS = 224  # heightmap cells per side (paper 2, section 3)
CROP_CELLS = 112  # attention crop side in cells (paper 2, section 5.1.1)
N_ROTATIONS = 16  # policy rotations, 22.5 degrees apart (paper 2, Fig. 2)
ROTATION_STEP = 2.0 * math.pi / N_ROTATIONS
PUSH_LENGTH = 0.10  # m, straight-line push (paper 2, section 3)


@dataclass(frozen=True)
class Pose:
    """A rigid transform as a 4x4 homogeneous matrix (child frame expressed in the parent frame)."""

    matrix: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise ValueError("pose must be a finite 4x4 matrix")
        m = m.copy()
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @classmethod
    def from_rt(cls, rotation: np.ndarray, translation: np.ndarray) -> Pose:
        m = np.eye(4)
        m[:3, :3] = rotation
        m[:3, 3] = translation
        return cls(m)

    @classmethod
    def from_xyz_rpy(cls, xyz: tuple[float, float, float], rpy: tuple[float, float, float]) -> Pose:
        """Pose from a position and roll-pitch-yaw (fixed axes x, then y, then z)."""
        return cls.from_rt(rpy_to_matrix(*rpy), np.asarray(xyz, dtype=np.float64))

    @classmethod
    def look_at(cls, eye: tuple[float, float, float], target: tuple[float, float, float],
                up: tuple[float, float, float] = (0.0, 1.0, 0.0)) -> Pose:
        """Camera pose in the optical convention (z forward, x right, y down) looking at ``target``."""
        eye_v = np.asarray(eye, dtype=np.float64)
        z = np.asarray(target, dtype=np.float64) - eye_v
        z /= np.linalg.norm(z)
        up_v = np.asarray(up, dtype=np.float64)
        if abs(float(np.dot(z, up_v / np.linalg.norm(up_v)))) > 0.999:
            up_v = np.array([1.0, 0.0, 0.0])
        x = np.cross(-up_v, z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        return cls.from_rt(np.column_stack([x, y, z]), eye_v)

    @property
    def rotation(self) -> np.ndarray:
        return self.matrix[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        return self.matrix[:3, 3]

    def inverse(self) -> Pose:
        r = self.rotation.T
        return Pose.from_rt(r, -r @ self.translation)

    def __matmul__(self, other: Pose) -> Pose:
        return Pose(self.matrix @ other.matrix)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform ``(..., 3)`` points from the child frame into the parent frame."""
        pts = np.asarray(points, dtype=np.float64)
        return pts @ self.rotation.T + self.translation


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation matrix Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of a colour (or aligned depth) image, in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def deproject(self, depth: np.ndarray) -> np.ndarray:
        """Back-project an ``HxW`` depth image (metres) into ``HxWx3`` camera-frame points."""
        h, w = depth.shape
        if (h, w) != (self.height, self.width):
            raise ValueError(f"depth is {w}x{h}, intrinsics expect {self.width}x{self.height}")
        u = np.arange(w, dtype=np.float32)
        v = np.arange(h, dtype=np.float32)
        x = (u[None, :] - self.cx) / self.fx * depth
        y = (v[:, None] - self.cy) / self.fy * depth
        return np.stack([x, y, depth.astype(np.float32)], axis=-1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project ``(..., 3)`` camera-frame points to ``(..., 2)`` pixel coordinates (u, v)."""
        pts = np.asarray(points, dtype=np.float64)
        z = pts[..., 2]
        return np.stack([pts[..., 0] / z * self.fx + self.cx, pts[..., 1] / z * self.fy + self.cy], -1)

    def ray_directions(self) -> np.ndarray:
        """Unit ray directions ``(H*W, 3)`` in the camera frame through every pixel centre, row-major."""
        u, v = np.meshgrid(np.arange(self.width) + 0.0, np.arange(self.height) + 0.0)
        d = np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], -1).reshape(-1, 3)
        return d / np.linalg.norm(d, axis=1, keepdims=True)


D435_COLOR_640x480 = Intrinsics(640, 480, 615.0, 615.0, 319.5, 239.5)  # typical D435 colour stream


@dataclass(frozen=True)
class WorkspaceGrid:
    """The square workspace on the table divided into ``cells x cells`` heightmap cells."""

    x_min: float
    y_min: float
    cell_size: float = CELL_SIZE
    cells: int = GRID_CELLS
    table_z: float = 0.0

    @property
    def side(self) -> float:
        return self.cell_size * self.cells

    @property
    def x_max(self) -> float:
        return self.x_min + self.side

    @property
    def y_max(self) -> float:
        return self.y_min + self.side

    @property
    def center(self) -> tuple[float, float]:
        return (self.x_min + self.side / 2, self.y_min + self.side / 2)

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        """True when (x, y) lies inside the workspace shrunk by ``margin`` on every side."""
        return (self.x_min + margin <= x <= self.x_max - margin
                and self.y_min + margin <= y <= self.y_max - margin)

    def cell_of(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) indices of the cells holding metric points; may fall outside the grid."""
        col = np.floor((np.asarray(x) - self.x_min) / self.cell_size).astype(np.int64)
        row = np.floor((np.asarray(y) - self.y_min) / self.cell_size).astype(np.int64)
        return row, col

    def center_of(self, row: np.ndarray | float, col: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Metric (x, y) of cell centres."""
        x = self.x_min + (np.asarray(col, dtype=np.float64) + 0.5) * self.cell_size
        y = self.y_min + (np.asarray(row, dtype=np.float64) + 0.5) * self.cell_size
        return x, y

    def in_grid(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        return (row >= 0) & (row < self.cells) & (col >= 0) & (col < self.cells)

    def metres_to_cells(self, distance: float) -> float:
        return distance / self.cell_size


def rotation_angle(index: int) -> float:
    """Angle in radians of policy rotation ``index``."""
    return (index % N_ROTATIONS) * ROTATION_STEP


def wrap_angle(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi
