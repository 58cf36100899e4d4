"""Which primitives the gripper can physically carry out at each cell: the learned policy's action masks.

Paper 2's network may propose a grasp whose open fingers would come down on a neighbour, or a push that
starts on top of an object. The simulated (and the real) gripper stops such a descent on contact, so the
action is wasted. The learned methods therefore choose only among actions that pass these geometric tests
on the height map (the clear-pad and free-start tests are the scripted policy's own):

- a grasp is *clear* when nothing under either open finger pad stands higher than the fingertips will
  be (the grasp height plus ``PAD_CLEARANCE``); with the recipe's ``policy.pad_margin`` the pads are
  also tested grown by it on every side, and grasps that pass that too are preferred;
- a grasp is *uncovered* when, between the open jaws, nothing but the target (its salient mask grown by
  ``TARGET_GROWTH``) stands higher than the target's top: otherwise the jaws close on whatever lies on it
  (in a heap, the item half covering a just-revealed impurity);
- a grasp is *at target level* when the top under the tool (which sets how deep the fingers go) stands
  at most ``TOP_STEP`` above the target's median height: the salient mask of a half uncovered impurity
  spills onto the item still lying on it, and a grasp placed there closes on that item or on nothing;
- a push is *free* when the closed fingers come down on free table (nothing under them above
  ``FREE_HEIGHT``) and *kept in* when its stroke ends ``PUSH_EDGE_MARGIN`` inside the workspace, so what
  it shoves ahead tends to stay where the camera and the robot can reach it;
- a push *reaches the cover* of a half-hidden target (``cover_cells``: what stands above it within
  ``COVER_REACH`` of it) while a stroke from a free start in the policy's crop can: such a target mostly
  admits no grasp, and spreading its other neighbours raises TCDD without ever freeing it (the agent's
  ``_meets`` applies this);
- a push *spares the border* unless its stroke reaches a cell of the target (or, with none visible, of
  the cluster that may hide one) that a whole stroke in that direction would carry nearer the workspace
  border, to less than ``BORDER_MARGIN`` inside. A target shoved against the border can no longer be
  grasped there (the open jaws would leave the workspace or land on its neighbours) and the next push
  loses it; TCDD rewards pushing the target away from the others, and away is often towards the border.

Each test is one grey-level dilation of the height map with the finger footprint at each rotation, so all
16 rotations of a 224-cell map cost a few milliseconds.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from sorter.cell.safety import GripperFootprint
from sorter.geometry import N_ROTATIONS, WorkspaceGrid, rotation_angle

PAD_CLEARANCE = 0.004  # m; a pad may land on something at most this much above the fingertips
FREE_HEIGHT = 0.008  # m; lower than this counts as free table for the closed fingers to descend on
COVER_CLEARANCE = 0.005  # m; between the jaws nothing but the target may stand higher than its top + this
COVER_REACH = 0.02  # m around the target that its cover is looked for (half the narrow side of a brick)
TARGET_GROWTH = 0.01  # m; the salient mask may miss the target rim, which must not count as a neighbour
TOP_STEP = 0.015  # m; the top under the tool may stand this much above the target's median height
PUSH_EDGE_MARGIN = 0.03  # m; a push stroke ends at least this far inside the workspace
BORDER_MARGIN = 0.05  # m; a pushed target should stay this far inside (about the open jaws' half reach)
CHAIN_REACH = 0.03  # m beyond the fingers that a push still moves things through what lies between


def pad_kernel(gripper: GripperFootprint, cell: float, angle: float, margin: float = 0.0) -> np.ndarray:
    """uint8 footprint of both open finger pads around a grasp centre, jaw line along ``angle``, each
    pad grown by ``margin`` on every side."""
    reach = gripper.max_opening / 2
    along, across = _jaw_frame(cell, angle, reach + gripper.pad_thickness + gripper.pad_width + 2 * margin)
    pads = (np.abs(along) >= reach - margin) & (np.abs(along) <= reach + gripper.pad_thickness + margin)
    return (pads & (np.abs(across) <= gripper.pad_width / 2 + margin)).astype(np.uint8)


def span_kernel(gripper: GripperFootprint, cell: float, angle: float) -> np.ndarray:
    """uint8 footprint of the space between the open pads, jaw line along ``angle``."""
    reach = gripper.max_opening / 2
    along, across = _jaw_frame(cell, angle, reach + gripper.pad_width)
    return ((np.abs(along) < reach) & (np.abs(across) <= gripper.pad_width / 2)).astype(np.uint8)


def band_kernel(gripper: GripperFootprint, cell: float, angle: float, across: float) -> np.ndarray:
    """uint8 footprint of the space between the open pads within ``across`` of the jaw line."""
    reach = gripper.max_opening / 2
    along, off = _jaw_frame(cell, angle, max(reach, across))
    return ((np.abs(along) < reach) & (np.abs(off) < across)).astype(np.uint8)


def _jaw_frame(cell: float, angle: float, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (m) along and across a jaw line at ``angle`` of every cell of a square kernel reaching at
    least ``extent`` from its centre (rows are y, columns are x)."""
    half = int(math.ceil(extent / cell)) + 1
    d = np.arange(-half, half + 1) * cell
    dy, dx = np.meshgrid(d, d, indexing="ij")
    return dx * math.cos(angle) + dy * math.sin(angle), -dx * math.sin(angle) + dy * math.cos(angle)


def disc_kernel(radius: float, cell: float) -> np.ndarray:
    r = int(math.ceil(radius / cell))
    d = np.arange(-r, r + 1) * cell
    return (np.hypot(*np.meshgrid(d, d, indexing="ij")) <= radius).astype(np.uint8)


def dilate(height: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Maximum of ``height`` over ``kernel`` centred on every cell (outside the map counts as table)."""
    return cv2.dilate(np.ascontiguousarray(height, np.float32), kernel, borderType=cv2.BORDER_CONSTANT,
                      borderValue=0.0)


def grasp_clear(height: np.ndarray, grasp_height: np.ndarray, gripper: GripperFootprint,
                grid: WorkspaceGrid, margin: float = 0.0) -> np.ndarray:
    """``(16, H, W)`` bool: the open pads, grown by ``margin`` metres, land no higher than
    ``grasp_height`` (+ clearance) there."""
    limit = np.asarray(grasp_height, np.float32) + PAD_CLEARANCE
    out = np.empty((N_ROTATIONS, *height.shape), bool)
    half = N_ROTATIONS // 2  # a grasp and its half-turn share the same pads
    for k in range(half):
        pads = dilate(height, pad_kernel(gripper, grid.cell_size, rotation_angle(k), margin))
        out[k] = out[k + half] = pads <= limit
    return out


def push_free(height: np.ndarray, gripper: GripperFootprint, grid: WorkspaceGrid) -> np.ndarray:
    """``(H, W)`` bool: the closed fingers come down on free table at this push start."""
    return dilate(height, disc_kernel(gripper.closed_radius(), grid.cell_size)) <= FREE_HEIGHT


def push_meets(cells: np.ndarray, gripper: GripperFootprint, grid: WorkspaceGrid,
               push_length: float) -> np.ndarray:
    """``(16, H, W)`` bool: a push from this cell at each rotation sweeps over some of ``cells`` (the
    closed fingers' disc along the whole stroke). All False when ``cells`` is empty."""
    src = np.asarray(cells, bool).astype(np.uint8)
    reach = gripper.closed_radius()
    out = np.empty((N_ROTATIONS, *src.shape), bool)
    for k, kernels in enumerate(_stroke_kernels(grid.cell_size, push_length + reach, reach)):
        swept = src
        for kernel in kernels:
            swept = cv2.dilate(swept, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        out[k] = swept > 0
    return out


def crowding(height: np.ndarray, target: np.ndarray, reach: float, grid: WorkspaceGrid) -> np.ndarray:
    """``(H, W)`` bool: what stands on the table within ``reach`` of the ``target`` cells, the target
    included: the objects whose distance to the target TCDD counts (``reach`` = the gripper opening)."""
    outside = (~np.asarray(target, bool)).astype(np.uint8)
    if outside.all():
        return np.zeros(outside.shape, bool)
    cells = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # to the nearest target cell
    return (cells <= reach / grid.cell_size) & (np.nan_to_num(np.asarray(height, np.float32)) > FREE_HEIGHT)


def grasp_uncovered(height: np.ndarray, target: np.ndarray, gripper: GripperFootprint,
                    grid: WorkspaceGrid, aside: float = 0.0, item_area: float = 0.0) -> np.ndarray:
    """``(16, H, W)`` bool: between the open jaws nothing off ``target`` rises above the target's top.

    With ``aside`` > 0, what rises there is looked at item by item (each connected patch of cells above
    the limit, which separates items whose flanks touch below the target's top): a patch no larger than
    ``item_area`` (m^2, one item's top) whose centre lies at least ``aside`` across the jaw line is
    allowed, since the closing pads strike it off its centre and shove it aside rather than squeeze it
    with the target. Larger patches (items merged, or one item lying over others) count as before.
    """
    target = np.asarray(target, bool)
    if not target.any():
        return np.zeros((N_ROTATIONS, *height.shape), bool)
    limit = float(height[target].max()) + COVER_CLEARANCE
    grown = cv2.dilate(target.astype(np.uint8), disc_kernel(TARGET_GROWTH, grid.cell_size)).astype(bool)
    high = ~grown & (np.asarray(height, np.float32) > limit)
    centres = np.empty((0, 2), int)
    if aside > 0 and high.any():
        high, centres = _single_items(high, item_area / grid.cell_size ** 2)
    high = high.astype(np.uint8)
    out = np.empty((N_ROTATIONS, *height.shape), bool)
    half = N_ROTATIONS // 2
    for k in range(half):
        angle = rotation_angle(k)
        out[k] = dilate(high, span_kernel(gripper, grid.cell_size, angle)) == 0
        if len(centres):
            _refuse_around(out[k], centres, band_kernel(gripper, grid.cell_size, angle, aside))
        out[k + half] = out[k]
    return out


def _single_items(high: np.ndarray, max_cells: float) -> tuple[np.ndarray, np.ndarray]:
    """Split ``high`` cells into (the patches larger than ``max_cells``, the ``(n, 2)`` row and column of
    each smaller patch's centre)."""
    _, labels, stats, centroids = cv2.connectedComponentsWithStats(high.astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= max_cells
    small[0] = False  # the background
    return high & ~small[labels], np.rint(centroids[small][:, ::-1]).astype(int)


def _refuse_around(ok: np.ndarray, points: np.ndarray, kernel: np.ndarray) -> None:
    """Clear ``ok`` wherever the (point-symmetric) ``kernel`` centred there covers one of ``points``:
    the kernel stamped on each point, far cheaper than dilating a map holding a few points."""
    r = kernel.shape[0] // 2
    rows, cols = ok.shape
    for i, j in points:
        top, left = max(i - r, 0), max(j - r, 0)
        bottom, right = min(i + r + 1, rows), min(j + r + 1, cols)
        patch = kernel[top - (i - r):bottom - (i - r), left - (j - r):right - (j - r)]
        ok[top:bottom, left:right] &= patch == 0


def cover_cells(height: np.ndarray, target: np.ndarray, grid: WorkspaceGrid,
                reach: float = COVER_REACH) -> np.ndarray:
    """``(H, W)`` bool: the target's cover: cells off the ``target`` within ``reach`` of it that stand
    ``COVER_CLEARANCE`` above its median height (an item lying on a half-hidden target, or leaning over
    its rim). Empty when the target lies free among neighbours no taller than itself."""
    target = np.asarray(target, bool)
    if not target.any():
        return np.zeros(target.shape, bool)
    limit = float(np.median(height[target])) + COVER_CLEARANCE
    near = cv2.dilate(target.astype(np.uint8), disc_kernel(reach, grid.cell_size)).astype(bool)
    return near & ~target & (np.nan_to_num(np.asarray(height, np.float32)) > limit)


def grasp_at_target_level(top: np.ndarray, height: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the top under the tool (``top``, the local maximum that sets the grasp height)
    stands at most ``TOP_STEP`` above the median height of the ``target`` cells."""
    target = np.asarray(target, bool)
    if not target.any():
        return np.zeros(height.shape, bool)
    return top <= float(np.median(height[target])) + TOP_STEP


def push_kept_in(grid: WorkspaceGrid, push_length: float) -> np.ndarray:
    """``(16, H, W)`` bool: a push from this cell at each rotation ends ``PUSH_EDGE_MARGIN`` inside."""
    return _stroke_ends_inside(grid, push_length) >= PUSH_EDGE_MARGIN


def push_spares_border(grid: WorkspaceGrid, guarded: np.ndarray, push_length: float,
                       gripper: GripperFootprint) -> np.ndarray:
    """``(16, H, W)`` bool: a push from this cell at each rotation does not shove ``guarded`` cells (the
    target, or the cluster that may hide one) towards the border to within ``BORDER_MARGIN``.

    A guarded cell is endangered by a push direction when moving it a whole stroke that way would bring
    it nearer the border and less than ``BORDER_MARGIN`` inside; a push is refused when its stroke
    reaches an endangered cell (the closed fingers' disc grown by ``CHAIN_REACH`` for what lies
    between, since whatever the fingers touch pushes its neighbours). All True when nothing is guarded.
    """
    guarded = np.asarray(guarded, bool)
    out = np.ones((N_ROTATIONS, grid.cells, grid.cells), bool)
    if not guarded.any():
        return out
    toward = _toward_border(grid, push_length)
    reach = gripper.closed_radius() + CHAIN_REACH
    kernels = _stroke_kernels(grid.cell_size, push_length + reach, reach)
    for k in range(N_ROTATIONS):
        endangered = guarded & toward[k]
        if endangered.any():
            swept = endangered.astype(np.uint8)
            for kernel in kernels[k]:
                swept = cv2.dilate(swept, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            out[k] = swept == 0
    return out


@functools.lru_cache(maxsize=4)
def _toward_border(grid: WorkspaceGrid, push_length: float) -> np.ndarray:
    """``(16, H, W)`` bool: moved a whole stroke at each rotation, this cell would end nearer the border
    than it is and less than ``BORDER_MARGIN`` inside the workspace."""
    x, y = grid.center_of(*np.indices((grid.cells, grid.cells)))
    moved = _stroke_ends_inside(grid, push_length)
    out = (moved < BORDER_MARGIN) & (moved < _inside_by(grid, x, y))
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=4)
def _stroke_ends_inside(grid: WorkspaceGrid, push_length: float) -> np.ndarray:
    """``(16, H, W)``: how far inside the workspace a stroke from this cell at each rotation ends."""
    x, y = grid.center_of(*np.indices((grid.cells, grid.cells)))
    out = np.stack([_inside_by(grid, x + push_length * math.cos(rotation_angle(k)),
                               y + push_length * math.sin(rotation_angle(k))) for k in range(N_ROTATIONS)])
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=4)
def _stroke_kernels(cell: float, ahead: float, half_width: float
                    ) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per rotation, the stroke's reach (offsets cell minus push start: ``-half_width`` to ``ahead``
    along the push, ``half_width`` to either side) as two uint8 line kernels whose successive
    dilations sweep that rectangle: far cheaper than one dilation by the filled rectangle."""
    out = []
    for k in range(N_ROTATIONS):
        a = rotation_angle(k)
        along = _segment(cell, (-half_width * math.cos(a), -half_width * math.sin(a)),
                         (ahead * math.cos(a), ahead * math.sin(a)))
        across = _segment(cell, (half_width * math.sin(a), -half_width * math.cos(a)),
                          (-half_width * math.sin(a), half_width * math.cos(a)))
        out.append((along, across))
    return tuple(out)


def _segment(cell: float, p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
    """uint8 kernel centred on offset 0 holding the segment from ``p0`` to ``p1`` (metres, x and y)."""
    half = int(math.ceil(max(map(abs, (*p0, *p1))) / cell)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.uint8)
    ends = [(half + round(x / cell), half + round(y / cell)) for x, y in (p0, p1)]
    cv2.line(kernel, ends[0], ends[1], 1, 1)
    return kernel


def _inside_by(grid: WorkspaceGrid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How far (x, y) lies inside the workspace: the distance to its nearest border, negative outside."""
    return np.minimum(np.minimum(x - grid.x_min, grid.x_max - x), np.minimum(y - grid.y_min, grid.y_max - y))
