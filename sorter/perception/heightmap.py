"""Orthographic colour and height maps of the workspace from one RGB-D frame (robot base frame).

Every valid depth pixel is back-projected with the colour intrinsics, moved into the robot base frame by
the camera pose and dropped into the 2 mm cell of ``WorkspaceGrid`` below it; each cell keeps its highest
point (what a top-down gripper meets first) and that point's colour. ``np.maximum.at`` does the per-cell
maximum in one vectorised pass.

Tiny holes (depth dropout at edges, missing pixels, the cracks a camera coarser than the grid leaves)
are filled: the empty cells that a 3 x 3 morphological closing of ``valid`` covers, i.e. gaps narrower
than 3 cells (6 mm), take the highest height of their measured neighbours (conservative: a planned
motion never dips into an unseen hole) and their mean colour. Wider gaps (occlusion shadows) stay empty
and ``valid`` says so. Heights below the table (depth noise) are clipped to 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from sorter.cell.base import RGBDFrame
from sorter.errors import SorterError
from sorter.geometry import Intrinsics, Pose, WorkspaceGrid


class PerceptionError(SorterError):
    """Perception got input it cannot use (wrong shapes, inconsistent frame); the message says which."""


@dataclass(frozen=True)
class Heightmaps:
    """Colour, height and validity of every workspace cell; row = y, col = x (see ``WorkspaceGrid``).

    ``pixel`` is the flat index (``v * width + u``) of the camera pixel whose point a cell kept, -1 where
    the cell was empty or filled; ``image_shape`` is the camera image's (height, width).
    """

    color: np.ndarray  # HxWx3 uint8 RGB
    height: np.ndarray  # HxW float32, metres above the table, 0 where empty
    valid: np.ndarray  # HxW bool, measured (or filled from measured neighbours)
    grid: WorkspaceGrid
    pixel: np.ndarray | None = None  # HxW int32
    image_shape: tuple[int, int] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.height.shape


def empty_heightmaps(grid: WorkspaceGrid) -> Heightmaps:
    """Heightmaps of a workspace where nothing was measured."""
    n = grid.cells
    return Heightmaps(np.zeros((n, n, 3), np.uint8), np.zeros((n, n), np.float32),
                      np.zeros((n, n), bool), grid, np.full((n, n), -1, np.int32), None)


def compute_heightmaps(frame: RGBDFrame, camera_pose: Pose, grid: WorkspaceGrid) -> Heightmaps:
    """Project ``frame`` into the workspace grid; see the module docstring for holes and clipping."""
    color, depth = _checked_arrays(frame)
    h, w = depth.shape
    d = depth.ravel()
    pix = np.flatnonzero(d > 0)
    dv = d[pix]
    finite = np.isfinite(dv)
    if not finite.all():
        pix, dv = pix[finite], dv[finite]
    if pix.size == 0:
        return _with_image(empty_heightmaps(grid), (h, w))
    x, y, z = _to_base(pix, dv, frame.intrinsics, camera_pose)
    inv = 1.0 / grid.cell_size
    col = ((x - grid.x_min) * inv).astype(np.int32)
    row = ((y - grid.y_min) * inv).astype(np.int32)
    inside = (x >= grid.x_min) & (y >= grid.y_min) & (row < grid.cells) & (col < grid.cells)
    cell = row[inside] * grid.cells + col[inside]
    pix, z = pix[inside], z[inside] - np.float32(grid.table_z)
    top = np.full(grid.cells * grid.cells, -np.inf, np.float32)
    np.maximum.at(top, cell, z)
    win = z >= top[cell]
    shape2 = (grid.cells, grid.cells)
    rgb = np.zeros((grid.cells * grid.cells, 3), np.uint8)
    rgb[cell[win]] = color.reshape(-1, 3)[pix[win]]
    src = np.full(grid.cells * grid.cells, -1, np.int32)
    src[cell[win]] = pix[win]
    valid = np.isfinite(top).reshape(shape2)
    height = np.where(valid, np.maximum(top.reshape(shape2), 0.0), 0.0).astype(np.float32)
    rgb, height, valid = _fill_holes(rgb.reshape(*shape2, 3), height, valid)
    return Heightmaps(rgb, height, valid, grid, src.reshape(shape2), (h, w))


def _checked_arrays(frame: RGBDFrame) -> tuple[np.ndarray, np.ndarray]:
    color, depth = np.asarray(frame.color), np.asarray(frame.depth)
    k = frame.intrinsics
    if depth.ndim != 2 or color.shape != (*depth.shape, 3):
        raise PerceptionError(f"frame colour {color.shape} and depth {depth.shape} do not match; "
                              "colour must be HxWx3 and depth HxW of the same size")
    if depth.shape != (k.height, k.width):
        raise PerceptionError(f"frame is {depth.shape[1]}x{depth.shape[0]} but its intrinsics are "
                              f"{k.width}x{k.height}; check the camera configuration")
    if color.dtype != np.uint8:
        raise PerceptionError(f"frame colour must be uint8, got {color.dtype}")
    return color, depth.astype(np.float32, copy=False)


def _with_image(hm: Heightmaps, shape: tuple[int, int]) -> Heightmaps:
    return Heightmaps(hm.color, hm.height, hm.valid, hm.grid, hm.pixel, shape)


@functools.lru_cache(maxsize=8)
def _rays(k: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (x/z, y/z) of the pinhole model, flattened row-major; cached per intrinsics."""
    u = (np.arange(k.width, dtype=np.float32) - k.cx) / k.fx
    v = (np.arange(k.height, dtype=np.float32) - k.cy) / k.fy
    rx = np.broadcast_to(u[None, :], (k.height, k.width)).ravel().copy()
    ry = np.broadcast_to(v[:, None], (k.height, k.width)).ravel().copy()
    return rx, ry


def _to_base(pix: np.ndarray, d: np.ndarray, k: Intrinsics, pose: Pose):
    """Base-frame x, y, z (float32) of the pixels ``pix`` at depths ``d``."""
    rx, ry = _rays(k)
    px, py = rx[pix] * d, ry[pix] * d
    r = pose.rotation.astype(np.float32)
    t = pose.translation.astype(np.float32)
    return tuple(r[i, 0] * px + r[i, 1] * py + r[i, 2] * d + t[i] for i in range(3))


def _fill_holes(color: np.ndarray, height: np.ndarray, valid: np.ndarray):
    """Fill gaps narrower than 3 cells (see module docstring) from their measured 3x3 neighbours."""
    kernel = np.ones((3, 3), np.uint8)
    closed = cv2.morphologyEx(valid.astype(np.uint8), cv2.MORPH_CLOSE, kernel,
                              borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
    hole = closed & ~valid
    if not hole.any():
        return color, height, valid
    v = valid.astype(np.float32)
    count = cv2.boxFilter(v, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    hole &= count > 0
    top = cv2.dilate(np.where(valid, height, 0.0).astype(np.float32), kernel)
    rgb_sum = cv2.boxFilter(color.astype(np.float32) * v[..., None], -1, (3, 3), normalize=False,
                            borderType=cv2.BORDER_CONSTANT)
    mean = np.clip(rgb_sum / np.maximum(count, 1.0)[..., None] + 0.5, 0, 255).astype(np.uint8)
    color = np.where(hole[..., None], mean, color)
    height = np.where(hole, top, height).astype(np.float32)
    return color, height, valid | hole


def sample_image(heightmaps: Heightmaps, image: np.ndarray, fill: float | int = 0) -> np.ndarray:
    """Resample a per-pixel camera array (HxW or HxWxC) onto the grid through the cells' source pixels.

    Used to bring ground-truth masks and image-space saliency into the heightmap; cells without a source
    pixel (empty or filled) get ``fill``.
    """
    if heightmaps.pixel is None or heightmaps.image_shape is None:
        raise PerceptionError("these heightmaps carry no pixel map; build them with compute_heightmaps")
    arr = np.asarray(image)
    if arr.shape[:2] != heightmaps.image_shape:
        raise PerceptionError(f"image is {arr.shape[:2]} but the heightmaps came from a "
                              f"{heightmaps.image_shape} frame")
    flat = arr.reshape(-1, *arr.shape[2:])
    src = heightmaps.pixel
    out = flat[np.maximum(src, 0)]
    out[src < 0] = fill
    return out


def project_cells(grid: WorkspaceGrid, camera_pose: Pose, intrinsics: Intrinsics,
                  height: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (u, v) of every cell centre at ``height`` above the table (GUI overlays).

    ``height`` is a scalar or the heightmap's HxW height; points behind the camera give NaN.
    """
    rows, cols = np.mgrid[0:grid.cells, 0:grid.cells]
    x, y = grid.center_of(rows, cols)
    z = np.broadcast_to(np.asarray(height, np.float64) + grid.table_z, x.shape)
    cam = camera_pose.inverse().apply(np.stack([x, y, z], -1))
    uv = intrinsics.project(np.where(cam[..., 2:3] > 0, cam, np.nan))
    return uv[..., 0], uv[..., 1]


def pixels_to_cells(u: np.ndarray, v: np.ndarray, depth: np.ndarray, intrinsics: Intrinsics,
                    camera_pose: Pose, grid: WorkspaceGrid) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) cells of image pixels at the given depths; may fall outside the grid (check in_grid)."""
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    d = np.asarray(depth, np.float64)
    cam = np.stack([(u - intrinsics.cx) / intrinsics.fx * d, (v - intrinsics.cy) / intrinsics.fy * d, d], -1)
    base = camera_pose.apply(cam)
    return grid.cell_of(base[..., 0], base[..., 1])
