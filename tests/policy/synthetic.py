"""A tiny heightmap world with a known answer, for learning tests (SB3-style identity problems).

One brick lies alone on the table; a grasp succeeds when its centre is within the brick's middle and its
jaw line crosses the brick's short side. Nothing else can earn a reward, so a working learner must find
exactly that action.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sorter.cell.base import Action, ActionKind
from sorter.perception.heightmap import Heightmaps

BRICK = (0.050, 0.026, 0.026)  # m: long side, short side, height
CENTRE_TOLERANCE = (0.012, 0.008)  # m along the long and short side
ANGLE_TOLERANCE = math.radians(25)


@dataclass(frozen=True)
class BrickScene:
    heightmaps: Heightmaps
    mask: np.ndarray
    centre_rc: tuple[int, int]
    xy: tuple[float, float]
    yaw: float  # direction of the long side


def brick_scene(grid, rng: np.random.Generator) -> BrickScene:
    """A brick at a random pose well inside the workspace."""
    margin = 0.09
    x = rng.uniform(grid.x_min + margin, grid.x_max - margin)
    y = rng.uniform(grid.y_min + margin, grid.y_max - margin)
    yaw = rng.uniform(0, math.pi)
    rows, cols = np.indices((grid.cells, grid.cells))
    cx, cy = grid.center_of(rows, cols)
    u = (cx - x) * math.cos(yaw) + (cy - y) * math.sin(yaw)
    v = -(cx - x) * math.sin(yaw) + (cy - y) * math.cos(yaw)
    mask = (np.abs(u) <= BRICK[0] / 2) & (np.abs(v) <= BRICK[1] / 2)
    height = np.where(mask, BRICK[2], 0.0).astype(np.float32)
    color = np.empty((grid.cells, grid.cells, 3), np.uint8)
    color[:] = (70, 72, 78)
    color[mask] = (210, 45, 40)
    hm = Heightmaps(color, height, np.ones_like(mask), grid)
    r, c = grid.cell_of(x, y)
    return BrickScene(hm, mask, (int(r), int(c)), (x, y), yaw)


def grasp_succeeds(scene: BrickScene, action: Action) -> bool:
    """The known answer: centred on the brick, jaws closing across its short side."""
    if action.kind is not ActionKind.GRASP:
        return False
    dx, dy = action.x - scene.xy[0], action.y - scene.xy[1]
    along = dx * math.cos(scene.yaw) + dy * math.sin(scene.yaw)
    across = -dx * math.sin(scene.yaw) + dy * math.cos(scene.yaw)
    short_axis = scene.yaw + math.pi / 2
    off = abs((action.angle - short_axis + math.pi / 2) % math.pi - math.pi / 2)
    return abs(along) <= CENTRE_TOLERANCE[0] and abs(across) <= CENTRE_TOLERANCE[1] and off <= ANGLE_TOLERANCE
