"""A scripted push-grasp policy: the fallback until a learned model exists, and a benchmark baseline.

Target mode: grasp at the salient target's centre. Of the 8 distinct jaw orientations the policy keeps
those where the target fits between the open jaws and both finger pads land on free space (nothing there
taller than the grasp height), and takes the one closest to the target's narrow axis. When no orientation
lands clear, it pushes the target away from its neighbours (a singulation push). Cluster mode (or a target
whose cells were all masked after repeated failures): push through the densest cluster, starting from a
free spot. Heights come from the height map; pixels become metres only through ``WorkspaceGrid``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sorter.cell.base import Action, ActionKind
from sorter.cell.safety import SafetyEnvelope
from sorter.geometry import N_ROTATIONS, PUSH_LENGTH, WorkspaceGrid, rotation_angle
from sorter.policy.affordance import FREE_HEIGHT, PAD_CLEARANCE
from sorter.policy.base import Decision, Policy

GRASP_DEPTH_FRACTION = 0.5  # grasp at half the target's height: pads meet its widest part on average
JAW_FIT_MARGIN = 0.01  # m; the target must be this much narrower than the open jaws
PUSH_HEIGHT = 0.012  # m above the table: pads meet items low, below their centre of mass
SINGULATION_GAP = 0.006  # m between the target's edge and the closed fingers at a singulation push start
NEIGHBOUR_RADIUS = 0.08  # m; objects this close to the target steer the singulation push away
EDGE_EPS = 1e-6  # m; keeps a footprint clamped onto the workspace edge inside despite rounding


@dataclass(frozen=True)
class _Candidate:
    action: Action
    score: float
    rotation: int


class HeuristicPolicy(Policy):
    """Grasp the attended target across its narrow axis, else push through the densest cluster."""

    name = "heuristic"

    def __init__(self, recipe):
        self.envelope = SafetyEnvelope.from_recipe(recipe)
        self.grid: WorkspaceGrid = recipe.workspace.grid()
        self.min_point_height = recipe.perception.occlusion.min_point_height
        rows, cols = np.indices((self.grid.cells, self.grid.cells))
        self._x, self._y = self.grid.center_of(rows, cols)

    def decide(self, attention, heightmaps, rng: np.random.Generator) -> Decision:
        height = np.nan_to_num(np.asarray(heightmaps.height, dtype=np.float64), nan=0.0, posinf=1.0,
                               neginf=0.0)
        mask = np.asarray(attention.target_mask, dtype=bool)
        if attention.mode == "target" and mask.any():
            candidate = self._grasp(mask, height) or self._singulate(mask, height, rng)
        else:
            candidate = None
        if candidate is None:
            candidate = self._cluster_push(attention, height, rng)
        return self._decision(candidate)

    def _decision(self, c: _Candidate) -> Decision:
        row, col = self.grid.cell_of(c.action.x, c.action.y)
        grasp = c.action.kind is ActionKind.GRASP
        return Decision(c.action, q_push=0.0 if grasp else c.score, q_grasp=c.score if grasp else 0.0,
                        pixel=(c.rotation, int(row), int(col)))

    def _grasp(self, mask: np.ndarray, height: np.ndarray) -> _Candidate | None:
        """The clear-landing jaw orientation closest to the target's narrow axis, or None.

        The jaws straddle the target's middle; near the workspace border they shift inwards as far as the
        open jaws still enclose the target and the pads still meet its central half."""
        xs, ys = self._x[mask], self._y[mask]
        top = float(height[mask].max())
        z = self.grid.table_z + max(top * GRASP_DEPTH_FRACTION, top - self.envelope.gripper.finger_length)
        opening = self.envelope.gripper.max_opening - JAW_FIT_MARGIN
        pad_limit = z - self.grid.table_z + PAD_CLEARANCE
        best = None
        for k in range(N_ROTATIONS // 2):
            angle = rotation_angle(k)
            u = np.array([math.cos(angle), math.sin(angle)])
            v = np.array([-u[1], u[0]])
            pu, pv = xs * u[0] + ys * u[1], xs * v[0] + ys * v[1]
            extent = float(np.ptp(pu)) + self.grid.cell_size
            if extent > opening:
                continue
            mid = (pu.min() + pu.max()) / 2 * u + (pv.min() + pv.max()) / 2 * v
            width = float(np.ptp(pv)) + self.grid.cell_size
            placed = self._place_inside(mid, u, v, (opening - extent) / 2, width / 4)
            if placed is None:
                continue
            action = Action(ActionKind.GRASP, placed[0], placed[1], z, angle)
            if not self.envelope.contains(action):
                continue
            if self._pads_height(placed[0], placed[1], u, mask, height) > pad_limit:
                continue
            shift = float(np.hypot(*(placed - mid)))
            score = 1.0 - (extent + shift) / self.envelope.gripper.max_opening
            if best is None or score > best.score:
                best = _Candidate(action, score, k)
        return best

    def _place_inside(self, centre: np.ndarray, u: np.ndarray, v: np.ndarray, slack_u: float,
                      slack_v: float) -> np.ndarray | None:
        """The nearest jaw centre whose open footprint lies inside the workspace, within the slacks."""
        a, b = self.envelope.gripper.grasp_half_extents()
        half = np.array([a * abs(u[0]) + b * abs(v[0]), a * abs(u[1]) + b * abs(v[1])]) + EDGE_EPS
        g = self.grid
        lo = np.array([g.x_min, g.y_min]) + half
        hi = np.array([g.x_max, g.y_max]) - half
        if np.any(lo > hi):
            return None
        placed = np.clip(centre, lo, hi)
        shift = placed - centre
        if abs(shift @ u) > slack_u + EDGE_EPS or abs(shift @ v) > slack_v + EDGE_EPS:
            return None
        return placed

    def _pads_height(self, cx: float, cy: float, u: np.ndarray, mask: np.ndarray,
                     height: np.ndarray) -> float:
        """Tallest thing (not the target) under either open finger pad."""
        g = self.envelope.gripper
        along = (self._x - cx) * u[0] + (self._y - cy) * u[1]
        across = np.abs(-(self._x - cx) * u[1] + (self._y - cy) * u[0])
        reach = g.max_opening / 2
        pads = (np.abs(along) >= reach) & (np.abs(along) <= reach + g.pad_thickness)
        pads &= (across <= g.pad_width / 2) & ~mask
        return float(height[pads].max()) if pads.any() else 0.0

    def _singulation_directions(self, mask: np.ndarray, height: np.ndarray, rng: np.random.Generator):
        """Push directions ordered by how directly they lead away from the target's neighbours."""
        cx, cy = float(self._x[mask].mean()), float(self._y[mask].mean())
        near = (~mask & (height > self.min_point_height)
                & (np.hypot(self._x - cx, self._y - cy) <= NEIGHBOUR_RADIUS))
        away = (cx - self._x[near].mean(), cy - self._y[near].mean()) if near.any() else (0.0, 0.0)
        order = rng.permutation(N_ROTATIONS)
        angles = [rotation_angle(int(k)) for k in order]
        return sorted(zip(order, angles, strict=True),
                      key=lambda ka: -(math.cos(ka[1]) * away[0] + math.sin(ka[1]) * away[1]))

    def _singulate(self, mask: np.ndarray, height: np.ndarray, rng: np.random.Generator) -> _Candidate | None:
        """Push the target away from its neighbours, starting just behind it on free table."""
        xs, ys = self._x[mask], self._y[mask]
        cx, cy = float(xs.mean()), float(ys.mean())
        radius = float(np.hypot(xs - cx, ys - cy).max()) + self.grid.cell_size
        back = radius + self.envelope.gripper.closed_radius() + SINGULATION_GAP
        for k, angle in self._singulation_directions(mask, height, rng):
            sx, sy = cx - back * math.cos(angle), cy - back * math.sin(angle)
            candidate = self._push_from(sx, sy, angle, height, int(k), score=0.5)
            if candidate is not None:
                return candidate
        return None

    def _push_from(self, sx: float, sy: float, angle: float, height: np.ndarray, rotation: int,
                   score: float) -> _Candidate | None:
        """A push starting at (sx, sy) if the fingers can descend there and the stroke stays inside."""
        action = Action(ActionKind.PUSH, sx, sy, self.grid.table_z + PUSH_HEIGHT, angle)
        if not self.envelope.contains(action):
            return None
        r = self.envelope.gripper.closed_radius()
        under = np.hypot(self._x - sx, self._y - sy) <= r
        if under.any() and float(height[under].max()) > FREE_HEIGHT:
            return None
        return _Candidate(action, score, rotation)

    def _cluster_push(self, attention, height: np.ndarray, rng: np.random.Generator) -> _Candidate:
        """A push whose stroke passes through the densest area; a centre push when nothing fits."""
        cx, cy = self._push_target(attention, height)
        half = PUSH_LENGTH / 2
        for k in rng.permutation(N_ROTATIONS):
            angle = rotation_angle(int(k))
            for back in (half, half * 1.5, half * 0.5):
                candidate = self._push_from(cx - back * math.cos(angle), cy - back * math.sin(angle), angle,
                                            height, int(k), score=0.25)
                if candidate is not None:
                    return candidate
        gx, gy = self.grid.center
        angle = rotation_angle(int(rng.integers(N_ROTATIONS)))
        return _Candidate(Action(ActionKind.PUSH, gx - half * math.cos(angle), gy - half * math.sin(angle),
                                 self.grid.table_z + PUSH_HEIGHT, angle), 0.0, 0)

    def _push_target(self, attention, height: np.ndarray) -> tuple[float, float]:
        """Where to push through: the cluster's centre, else the crop's, else the tallest object mass."""
        cluster = getattr(attention, "cluster", None)
        if cluster is not None and cluster.center_xy is not None:
            return float(cluster.center_xy[0]), float(cluster.center_xy[1])
        if getattr(attention, "crop_center_xy", None) is not None:
            return float(attention.crop_center_xy[0]), float(attention.crop_center_xy[1])
        objects = height > self.min_point_height
        if objects.any():
            return float(self._x[objects].mean()), float(self._y[objects].mean())
        return self.grid.center
