"""Overlays drawn on the live camera image: saliency and Q heat maps, impurity regions, the DBSCAN cluster
(with what a guard saw unlike the product, where the search is aimed) and the chosen action as the
gripper's footprint or a push arrow.

Everything the perception and policy produce lives on the workspace grid (table plane, robot base frame);
it reaches the camera image through one homography built from perception's own cell projection, and the
action is projected with the geometry module, so the GUI never invents a pixel-to-metre conversion.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from sorter.cell.base import Action, ActionKind
from sorter.geometry import PUSH_LENGTH, Intrinsics, Pose, WorkspaceGrid
from sorter.perception.heightmap import project_cells

HEAT_ALPHA = (0.15, 0.55)  # opacity at the map's minimum and maximum, so low values stay see-through
REGION_COLOR = (255, 0, 255)  # magenta with a dark halo: visible on impurities of any colour
CANDIDATE_COLOR = (160, 120, 120)
CLUSTER_COLOR = (0, 200, 230)
SIGHTING_COLOR = (255, 210, 0)  # amber: the sliver a guard saw, where the search pushes
GRASP_COLOR = (40, 220, 60)
PUSH_COLOR = (255, 150, 0)
WORKSPACE_COLOR = (200, 200, 200)
HALO_COLOR = (20, 20, 20)


class Layer(enum.StrEnum):
    SALIENCY = "saliency"
    REGIONS = "impurity regions"
    CLUSTER = "cluster"
    ACTION = "action"
    Q_MAP = "Q map"


LAYER_HELP = {  # what each layer draws, for the toggles' tooltips
    Layer.SALIENCY: "VOCUS2 saliency over the workspace: the brighter, the more a spot stands out",
    Layer.REGIONS: "magenta: regions judged impurities (the first is the target); thin dull rose: salient "
                   "regions judged product",
    Layer.CLUSTER: "cyan: the heap searched for a hidden impurity; amber: what the taught look saw "
                   "unlike the product, where the search pushes",
    Layer.ACTION: "green: the grasp's finger pads; orange: the push and its direction",
    Layer.Q_MAP: "the policy's Q values for the chosen primitive (red: best)",
}


@dataclass(frozen=True)
class GripperShape:
    """What the footprint drawing needs from the recipe's gripper (metres)."""

    opening: float
    pad_width: float
    pad_thickness: float


@dataclass(frozen=True)
class ViewGeometry:
    """How the workspace appears in the picture: the camera's view, or a top-down view of the grid."""

    grid: WorkspaceGrid
    grid_to_image: np.ndarray  # 3x3 homography, grid array coordinates (col, row) -> image pixels
    camera_pose: Pose | None = None
    intrinsics: Intrinsics | None = None

    @classmethod
    def camera(cls, grid: WorkspaceGrid, camera_pose: Pose, intrinsics: Intrinsics) -> ViewGeometry:
        """The camera's view; grid maps reach it through the table plane."""
        u, v = project_cells(grid, camera_pose, intrinsics)
        last = grid.cells - 1
        corners_rc = ((0, 0), (0, last), (last, last), (last, 0))
        src = np.array([[c, r] for r, c in corners_rc], np.float32)
        dst = np.array([[u[r, c], v[r, c]] for r, c in corners_rc], np.float32)
        return cls(grid, cv2.getPerspectiveTransform(src, dst), camera_pose, intrinsics)

    @classmethod
    def top_down(cls, grid: WorkspaceGrid, scale: int) -> ViewGeometry:
        """A picture of the grid itself (the colour heightmap) enlarged ``scale`` times."""
        offset = scale / 2 - 0.5
        return cls(grid, np.array([[scale, 0.0, offset], [0.0, scale, offset], [0.0, 0.0, 1.0]]))

    def world_to_image(self, points: np.ndarray) -> np.ndarray:
        """Pixels of ``(N, 3)`` points in the robot base frame."""
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        if self.camera_pose is not None and self.intrinsics is not None:
            return self.intrinsics.project(self.camera_pose.inverse().apply(pts))
        g = self.grid
        col = g.metres_to_cells(pts[:, 0] - g.x_min) - 0.5
        row = g.metres_to_cells(pts[:, 1] - g.y_min) - 0.5
        return _to_image(np.stack([col, row], -1), self.grid_to_image)


@dataclass(frozen=True)
class OverlayData:
    """One picture and everything that can be drawn on it; maps are on the workspace grid (row=y, col=x)."""

    image: np.ndarray  # uint8 RGB HxWx3
    view: ViewGeometry
    gripper: GripperShape
    saliency: np.ndarray | None = None
    regions: list[np.ndarray] = field(default_factory=list)  # accepted impurity regions
    candidates: list[np.ndarray] = field(default_factory=list)  # salient regions judged not impurities
    cluster: np.ndarray | None = None
    action: Action | None = None
    q_map: np.ndarray | None = None
    sighting: np.ndarray | None = None  # what a guard saw unlike the product (cluster search only)


def render(data: OverlayData, layers: set[Layer]) -> np.ndarray:
    """The base image with the chosen layers drawn on it (a new array)."""
    out = data.image.copy()
    h = data.view.grid_to_image
    _outline_workspace(out, data.view)
    if Layer.Q_MAP in layers and data.q_map is not None:
        _blend_heat(out, _normalise(data.q_map), h, cv2.COLORMAP_JET)
    if Layer.SALIENCY in layers and data.saliency is not None:
        _blend_heat(out, _normalise(data.saliency), h, cv2.COLORMAP_INFERNO)
    if Layer.CLUSTER in layers and data.cluster is not None:
        _draw_mask(out, data.cluster, h, CLUSTER_COLOR, fill=0.25)
    if Layer.CLUSTER in layers and data.sighting is not None:
        _draw_mask(out, data.sighting, h, SIGHTING_COLOR, fill=0.0)
    if Layer.REGIONS in layers:
        for mask in data.candidates:
            _draw_mask(out, mask, h, CANDIDATE_COLOR, fill=0.0, thickness=1)
        for mask in data.regions:
            _draw_mask(out, mask, h, REGION_COLOR, fill=0.0)
    if Layer.ACTION in layers and data.action is not None and data.action.is_finite():
        draw_action(out, data.action, data.view, data.gripper)
    return out


def _normalise(values: np.ndarray) -> np.ndarray:
    v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(v.min()), float(v.max())
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def _blend_heat(out: np.ndarray, values: np.ndarray, h: np.ndarray, colormap: int) -> None:
    """Blend a colour-mapped grid map into ``out``; opacity grows with the value, zero off the grid."""
    size = (out.shape[1], out.shape[0])
    heat = np.ascontiguousarray(cv2.applyColorMap((values * 255).astype(np.uint8), colormap)[..., ::-1])
    warped = cv2.warpPerspective(heat, h, size, flags=cv2.INTER_LINEAR)
    alpha_grid = (HEAT_ALPHA[0] + (HEAT_ALPHA[1] - HEAT_ALPHA[0]) * values).astype(np.float32)
    alpha = cv2.warpPerspective(alpha_grid, h, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    out[:] = cv2.blendLinear(warped, out, alpha, 1.0 - alpha)


def _draw_mask(out: np.ndarray, mask: np.ndarray, h: np.ndarray, color: tuple, fill: float,
               thickness: int = 2) -> None:
    contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [_to_image(c.reshape(-1, 2).astype(np.float64), h).astype(np.int32)
             for c in contours if len(c) > 1]
    if not polys:
        return
    if fill > 0:
        layer = out.copy()
        cv2.fillPoly(layer, polys, color)
        cv2.addWeighted(layer, fill, out, 1 - fill, 0, dst=out)
    if thickness > 1:
        cv2.polylines(out, polys, True, HALO_COLOR, thickness + 2, cv2.LINE_AA)
    cv2.polylines(out, polys, True, color, thickness, cv2.LINE_AA)


def _to_image(points: np.ndarray, h: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2), h).reshape(-1, 2)


def _outline_workspace(out: np.ndarray, view: ViewGeometry) -> None:
    g = view.grid
    z = g.table_z
    corners = np.array([[g.x_min, g.y_min, z], [g.x_max, g.y_min, z], [g.x_max, g.y_max, z],
                        [g.x_min, g.y_max, z]])
    poly = view.world_to_image(corners).astype(np.int32)
    cv2.polylines(out, [poly], True, WORKSPACE_COLOR, 1, cv2.LINE_AA)


def draw_action(out: np.ndarray, action: Action, view: ViewGeometry, gripper: GripperShape) -> None:
    """A grasp as the two finger pads and the jaw line; a push as an arrow of the push length."""
    u = np.array([math.cos(action.angle), math.sin(action.angle)])
    n = np.array([-u[1], u[0]])
    c = np.array([action.x, action.y])

    def px(points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        return view.world_to_image(np.column_stack([pts, np.full(len(pts), action.z)]))

    if action.kind == ActionKind.GRASP:
        reach = gripper.opening / 2 + gripper.pad_thickness / 2
        jaw = px(np.array([c - reach * u, c + reach * u]))
        cv2.line(out, _pt(jaw[0]), _pt(jaw[1]), GRASP_COLOR, 2, cv2.LINE_AA)
        for side in (-1, 1):
            pad = _rect(c + side * reach * u, u, n, gripper.pad_thickness, gripper.pad_width)
            cv2.fillPoly(out, [px(pad).astype(np.int32)], GRASP_COLOR, cv2.LINE_AA)
        cv2.circle(out, _pt(px(c)[0]), 3, GRASP_COLOR, -1, cv2.LINE_AA)
    else:
        ends = px(np.array([c, c + PUSH_LENGTH * u]))
        cv2.arrowedLine(out, _pt(ends[0]), _pt(ends[1]), PUSH_COLOR, 3, cv2.LINE_AA, tipLength=0.2)
        closed = px(_rect(c, u, n, gripper.pad_thickness * 2, gripper.pad_width)).astype(np.int32)
        cv2.polylines(out, [closed], True, PUSH_COLOR, 2, cv2.LINE_AA)


def _rect(centre: np.ndarray, u: np.ndarray, n: np.ndarray, along: float, across: float) -> np.ndarray:
    a, b = u * along / 2, n * across / 2
    return np.array([centre - a - b, centre + a - b, centre + a + b, centre - a + b])


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))
