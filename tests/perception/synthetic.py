"""Synthetic inputs with known answers: analytic RGB-D frames of flat-topped boxes, heightmaps, images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sorter.cell.base import RGBDFrame
from sorter.geometry import D435_COLOR_640x480, Intrinsics, Pose, WorkspaceGrid
from sorter.perception.heightmap import Heightmaps

GRID = WorkspaceGrid(0.300, -0.224)
TABLE_RGB = (70, 72, 78)
PRODUCT_RGB = (40, 90, 200)
IMPURITY_RGB = (210, 45, 40)


@dataclass(frozen=True)
class Box:
    """An axis-aligned block on the table: x/y extents (m), top height (m), colour."""

    x0: float
    x1: float
    y0: float
    y1: float
    top: float
    rgb: tuple[int, int, int]


def render(boxes: list[Box], pose: Pose, k: Intrinsics = D435_COLOR_640x480,
           table_rgb=TABLE_RGB) -> RGBDFrame:
    """Ray-cast the table plane and solid boxes (slab test); depth is along the optical axis."""
    u, v = np.meshgrid(np.arange(k.width, dtype=np.float64), np.arange(k.height, dtype=np.float64))
    rays = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)], -1) @ pose.rotation.T
    origin = pose.translation
    best_t = (GRID.table_z - origin[2]) / rays[..., 2]
    color = np.empty((*u.shape, 3), np.uint8)
    color[:] = table_rgb
    with np.errstate(divide="ignore", invalid="ignore"):
        for b in boxes:
            lo = np.array([b.x0, b.y0, GRID.table_z]) - origin
            hi = np.array([b.x1, b.y1, GRID.table_z + b.top]) - origin
            t1, t2 = lo / rays, hi / rays
            t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
            t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
            hit = (t_near <= t_far) & (t_near > 0) & (t_near < best_t)
            best_t = np.where(hit, t_near, best_t)
            color[hit] = b.rgb
    depth = np.where(best_t > 0, best_t, 0.0).astype(np.float32)  # z_cam == t for unit-z rays
    return RGBDFrame(color, depth, k, 0.0, 0)


def top_down_pose(height: float = 0.7) -> Pose:
    cx, cy = GRID.center
    return Pose.look_at((cx, cy, height), (cx, cy, 0.0))


def heightmaps_of(cells: list[tuple[int, int, int, int, float, tuple[int, int, int]]],
                  rng: np.random.Generator | None = None, texture: float = 0.0,
                  grid: WorkspaceGrid = GRID) -> Heightmaps:
    """Heightmaps drawn directly: rectangles (row0, col0, rows, cols, height, rgb) on a table."""
    n = grid.cells
    color = np.empty((n, n, 3), np.float64)
    color[:] = TABLE_RGB
    height = np.zeros((n, n), np.float32)
    for r0, c0, nr, nc, h, rgb in cells:
        color[r0:r0 + nr, c0:c0 + nc] = rgb
        height[r0:r0 + nr, c0:c0 + nc] = np.maximum(height[r0:r0 + nr, c0:c0 + nc], h)
    if rng is not None and texture > 0:
        color += rng.normal(0.0, texture, color.shape)
    color = np.clip(color, 0, 255).astype(np.uint8)
    return Heightmaps(color, height, np.ones((n, n), bool), grid)


def item_grid(rng: np.random.Generator, odd: dict[tuple[int, int], tuple[int, int, int]],
              rows: int = 5, cols: int = 5, size: int = 20, pitch: int = 40, spread: float = 6.0,
              product=PRODUCT_RGB, height: float = 0.03):
    """A rows x cols lattice of items of ``product`` colour (each with its own colour offset), with the
    lattice positions in ``odd`` given another colour. Returns the rectangles for ``heightmaps_of``."""
    out = []
    for r in range(rows):
        for c in range(cols):
            base = np.asarray(odd.get((r, c), product), np.float64)
            rgb = tuple(int(v) for v in np.clip(base + rng.normal(0, spread, 3), 0, 255))
            out.append((12 + r * pitch, 12 + c * pitch, size, size, height, rgb))
    return out
