"""The safety envelope: every action is checked here before it reaches the robot.

``SafetyEnvelope.check(action, heights)`` returns a ``SafetyVerdict`` holding either the action actually
allowed (possibly with its height raised onto the table clearance) or a typed ``Refusal``. The pick loop
records every verdict and sends only allowed actions, so a bad Q map, a NaN or a corrupted calibration
can never move the arm outside the recipe's workspace.

The envelope is geometric and conservative: the gripper's footprint (open jaws for a grasp, the closed
fingers swept along the whole stroke for a push) must lie inside the workspace, the tool height must lie
between the table clearance and the travel height, and for a grasp the straight carry path to the reject
bin must clear everything the height map shows, with the held item hanging below the fingers.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, replace

import numpy as np

from sorter.cell.base import Action, ActionKind
from sorter.geometry import PUSH_LENGTH, WorkspaceGrid, wrap_angle

TABLE_CLEARANCE = 0.003  # m; fingertips never go lower than this above the table
Z_RAISE_TOLERANCE = 0.02  # m; a target this far below the clearance is raised onto it, more is refused
CARRY_CLEARANCE = 0.01  # m; the held item must pass this far above anything on the carry path


class Refusal(enum.StrEnum):
    """Why an action was not sent to the robot."""

    NOT_FINITE = "not finite"
    UNKNOWN_KIND = "unknown primitive"
    OUTSIDE_WORKSPACE = "outside workspace"
    BELOW_TABLE = "below table"
    ABOVE_MAX_HEIGHT = "above maximum height"
    BIN_PATH_BLOCKED = "reject-bin path blocked"
    NO_HEIGHTMAP = "no valid height map"


@dataclass(frozen=True)
class SafetyVerdict:
    """The result of a check: ``action`` is what may be sent (None when refused)."""

    requested: Action
    action: Action | None
    refusal: Refusal | None = None
    detail: str = ""
    adjusted: bool = False

    @property
    def allowed(self) -> bool:
        return self.action is not None

    @property
    def label(self) -> str:
        """Short verdict for logs: 'ok', 'adjusted' or 'refused'."""
        if not self.allowed:
            return "refused"
        return "adjusted" if self.adjusted else "ok"

    def describe(self) -> str:
        if self.refusal is not None:
            return f"refused ({self.refusal}): {self.detail}"
        return f"{self.label}: {self.detail}" if self.detail else self.label


@dataclass(frozen=True)
class GripperFootprint:
    """Gripper extents seen from above (metres), from the recipe's gripper geometry."""

    max_opening: float
    pad_thickness: float
    pad_width: float
    finger_length: float

    def grasp_half_extents(self) -> tuple[float, float]:
        """Half extents of the open jaws: along the jaw line, and across it."""
        return self.max_opening / 2 + self.pad_thickness, self.pad_width / 2

    def closed_radius(self) -> float:
        """Radius of a disc holding the closed fingers in any orientation."""
        return math.hypot(self.pad_thickness, self.pad_width / 2)


@dataclass(frozen=True)
class SafetyEnvelope:
    """Where the tool may go: the workspace footprint, a height band and a clear path to the bin."""

    grid: WorkspaceGrid
    gripper: GripperFootprint
    z_min: float
    z_max: float
    travel_z: float
    bin_xy: tuple[float, float]
    push_length: float = PUSH_LENGTH

    @classmethod
    def from_recipe(cls, recipe) -> SafetyEnvelope:
        """The envelope implied by a recipe's workspace, gripper, robot travel height and reject bin."""
        grid = recipe.workspace.grid()
        g = recipe.gripper
        table = recipe.workspace.table_z
        return cls(
            grid=grid,
            gripper=GripperFootprint(g.max_opening, g.pad_thickness, g.pad_width, g.finger_length),
            z_min=table + TABLE_CLEARANCE,
            z_max=table + recipe.robot.travel_height,
            travel_z=table + recipe.robot.travel_height,
            bin_xy=(recipe.reject_bin.position[0], recipe.reject_bin.position[1]),
        )

    def check(self, action: Action, heights: np.ndarray | None) -> SafetyVerdict:
        """Return the action allowed, or a typed refusal; ``heights`` is the height map (m above table)."""
        if not isinstance(action, Action) or not _finite_action(action):
            return SafetyVerdict(action, None, Refusal.NOT_FINITE, f"non-finite coordinates in {action!r}")
        if action.kind not in (ActionKind.GRASP, ActionKind.PUSH):
            return SafetyVerdict(action, None, Refusal.UNKNOWN_KIND, f"kind {action.kind!r}")
        refusal = self._check_height(action)
        if refusal is not None:
            return refusal
        allowed, detail = self._adjust(action)
        outside = self._footprint_outside(allowed)
        if outside:
            return SafetyVerdict(action, None, Refusal.OUTSIDE_WORKSPACE, outside)
        if allowed.kind is ActionKind.GRASP:
            blocked = self._bin_path_blocked(allowed, heights)
            if blocked is not None:
                return blocked
        return SafetyVerdict(action, allowed, None, detail, adjusted=bool(detail))

    def contains(self, action: Action) -> bool:
        """True when the action's footprint and height lie inside the envelope (no path check)."""
        return (_finite_action(action) and self.z_min - 1e-9 <= action.z <= self.z_max + 1e-9
                and not self._footprint_outside(action))

    def footprint_corners(self, action: Action) -> np.ndarray:
        """``(N, 2)`` points whose convex hull covers everything the fingers sweep in the table plane."""
        u = np.array([math.cos(action.angle), math.sin(action.angle)])
        v = np.array([-u[1], u[0]])
        centre = np.array([action.x, action.y])
        if action.kind is ActionKind.GRASP:
            a, b = self.gripper.grasp_half_extents()
            return np.array([centre + sa * a * u + sb * b * v for sa in (-1, 1) for sb in (-1, 1)])
        r = self.gripper.closed_radius()
        end = centre + self.push_length * u
        square = [r * (sa * u + sb * v) for sa in (-1, 1) for sb in (-1, 1)]
        return np.array([p + s for p in (centre, end) for s in square])

    def _check_height(self, action: Action) -> SafetyVerdict | None:
        if action.z < self.z_min - Z_RAISE_TOLERANCE:
            return SafetyVerdict(action, None, Refusal.BELOW_TABLE,
                                 f"z {action.z:.4f} m is below the table clearance {self.z_min:.4f} m")
        if action.z > self.z_max:
            return SafetyVerdict(action, None, Refusal.ABOVE_MAX_HEIGHT,
                                 f"z {action.z:.4f} m is above the travel height {self.z_max:.4f} m")
        return None

    def _adjust(self, action: Action) -> tuple[Action, str]:
        """Raise a slightly-too-low target onto the clearance and wrap the angle; say what changed."""
        in_range = -math.pi <= action.angle < math.pi
        allowed = action if in_range else replace(action, angle=wrap_angle(action.angle))
        if action.z < self.z_min:
            return replace(allowed, z=self.z_min), f"z raised from {action.z:.4f} to {self.z_min:.4f} m"
        return allowed, ""

    def _footprint_outside(self, action: Action) -> str:
        corners = self.footprint_corners(action)
        g = self.grid
        bad = ((corners[:, 0] < g.x_min) | (corners[:, 0] > g.x_max)
               | (corners[:, 1] < g.y_min) | (corners[:, 1] > g.y_max))
        if not np.any(bad):
            return ""
        x, y = corners[np.argmax(bad)]
        return (f"{action.kind} at ({action.x:.3f}, {action.y:.3f}) reaches ({x:.3f}, {y:.3f}), outside "
                f"x {g.x_min:.3f}..{g.x_max:.3f}, y {g.y_min:.3f}..{g.y_max:.3f}")

    def _bin_path_blocked(self, action: Action, heights: np.ndarray | None) -> SafetyVerdict | None:
        """Refuse a grasp whose held item would hit something on the straight carry to the bin."""
        if heights is None or heights.shape != (self.grid.cells, self.grid.cells):
            return SafetyVerdict(action, None, Refusal.NO_HEIGHTMAP, "a grasp needs the current height map")
        tallest = self._tallest_on_carry_path(action, heights)
        if not math.isfinite(tallest):
            return SafetyVerdict(action, None, Refusal.NO_HEIGHTMAP, "height map has non-finite values on "
                                 "the path to the reject bin")
        hang = action.z - self.grid.table_z
        limit = self.travel_z - self.grid.table_z - hang - CARRY_CLEARANCE
        if tallest > limit:
            return SafetyVerdict(action, None, Refusal.BIN_PATH_BLOCKED,
                                 f"something {tallest:.3f} m tall lies on the carry path; the held item "
                                 f"clears only {limit:.3f} m at travel height")
        return None

    @functools.cached_property
    def _cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = np.indices((self.grid.cells, self.grid.cells))
        return self.grid.center_of(rows, cols)

    def _tallest_on_carry_path(self, action: Action, heights: np.ndarray) -> float:
        """Tallest height-map value in the jaw-wide corridor from the grasp to the bin, the item excluded."""
        x, y = self._cell_centres
        start = np.array([action.x, action.y])
        direction = np.asarray(self.bin_xy) - start
        length = float(np.linalg.norm(direction))
        if length < 1e-9:
            return 0.0
        d = direction / length
        rel_x, rel_y = x - start[0], y - start[1]
        along = rel_x * d[0] + rel_y * d[1]
        across = np.abs(-rel_x * d[1] + rel_y * d[0])
        half_width, _ = self.gripper.grasp_half_extents()
        corridor = (along >= 0) & (along <= length) & (across <= half_width)
        corridor &= np.hypot(rel_x, rel_y) > half_width
        values = heights[corridor]
        if values.size == 0:
            return 0.0
        if not np.all(np.isfinite(values)):
            return math.nan
        return float(values.max())


def _finite_action(action: Action) -> bool:
    try:
        return action.is_finite()
    except (TypeError, ValueError):
        return False
