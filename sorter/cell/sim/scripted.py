"""Scripted actions from ground truth: the reference grasps and pushes used by the demo, the benchmark
and the tests to check that the simulated physics can be trusted.
"""

from __future__ import annotations

import math

import numpy as np

from sorter.cell.base import Action, ActionKind
from sorter.cell.sim.cell import SimCell
from sorter.cell.sim.scenarios import drop_region, flat_pose
from sorter.cell.sim.scene import Placement
from sorter.cell.sim.shapes import sample_object
from sorter.recipe import ObjectSpec

GRASP_HEIGHT = 0.3  # fingertips this far up the object's height from its bottom
ANGLE_STEPS = 36  # jaw directions tried when looking for an object's narrow side
FIT_MARGIN = 0.01  # m the object must be narrower than the open jaws along the jaw line
CLEAR_ENOUGH = 0.03  # m of clearance around the landing fingers beyond which the narrower side wins
PUSH_START_GAP = 0.01  # m between the pusher and the object's side at the start of a push


def _rotation(quat: np.ndarray) -> np.ndarray:
    w, x, y, z = quat
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def extent_along(cell: SimCell, obj_id: int, direction: np.ndarray) -> float:
    """Width of the object's bounding box measured along a world direction."""
    state = cell.truth.object(obj_id)
    obj = cell.scene_object(obj_id)
    axes = _rotation(state.quat)
    return float(np.sum(np.abs(np.asarray(direction) @ axes) * obj.extents))


def narrow_angle(cell: SimCell, obj_id: int) -> float:
    """Jaw direction (rad) across the object's narrowest horizontal side."""
    angles = np.arange(ANGLE_STEPS) * math.pi / ANGLE_STEPS
    widths = [extent_along(cell, obj_id, np.array([math.cos(a), math.sin(a), 0.0])) for a in angles]
    return float(angles[int(np.argmin(widths))])


def grasp_action(cell: SimCell, obj_id: int) -> Action:
    """A grasp at the object's true centre, the jaws across a side that fits between them, turned so the
    fingers come down as far from the neighbours as possible (the narrowest side when isolated)."""
    state = cell.truth.object(obj_id)
    return Action(ActionKind.GRASP, float(state.position[0]), float(state.position[1]),
                  _grip_z(cell, obj_id), _clear_angle(cell, obj_id))


def _clear_angle(cell: SimCell, obj_id: int) -> float:
    """Jaw direction that fits the object and keeps the open fingers' landing spots clearest."""
    state = cell.truth.object(obj_id)
    gr = cell.recipe.gripper
    reach = gr.max_opening / 2 + gr.pad_thickness / 2
    others = [(s.position[:2], cell.scene_object(s.id).radius) for s in cell.truth.objects()
              if s.id != obj_id and s.in_workspace]
    best, best_key = narrow_angle(cell, obj_id), None
    for a in np.arange(ANGLE_STEPS) * math.pi / ANGLE_STEPS:
        d = np.array([math.cos(a), math.sin(a), 0.0])
        width = extent_along(cell, obj_id, d)
        if width > gr.max_opening - FIT_MARGIN:
            continue
        fingers = [state.position[:2] + s * reach * d[:2] for s in (-1.0, 1.0)]
        clearance = min((float(np.linalg.norm(f - p)) - r for f in fingers for p, r in others),
                        default=np.inf)
        key = (min(clearance, CLEAR_ENOUGH), -width)
        if best_key is None or key > best_key:
            best, best_key = float(a), key
    return best


def beside_action(cell: SimCell, obj_id: int, distance: float) -> Action:
    """A grasp ``distance`` metres beside the object's centre, across its narrow side, with the jaws
    running along its long side: the jaws sweep past the item, so a correct simulation must fail it."""
    state = cell.truth.object(obj_id)
    across = narrow_angle(cell, obj_id)
    side = np.array([math.cos(across), math.sin(across)]) * distance
    return Action(ActionKind.GRASP, float(state.position[0] + side[0]), float(state.position[1] + side[1]),
                  _grip_z(cell, obj_id), across + math.pi / 2)


def _grip_z(cell: SimCell, obj_id: int) -> float:
    state = cell.truth.object(obj_id)
    height = extent_along(cell, obj_id, np.array([0.0, 0.0, 1.0]))
    return float(state.position[2] - height / 2 + GRASP_HEIGHT * height)


def push_action(cell: SimCell, obj_id: int, direction: float) -> Action:
    """A push that starts just behind the object and runs through its centre along ``direction``."""
    state = cell.truth.object(obj_id)
    d = np.array([math.cos(direction), math.sin(direction), 0.0])
    behind = extent_along(cell, obj_id, d) / 2 + cell.recipe.gripper.pad_thickness + PUSH_START_GAP
    start = state.position[:2] - d[:2] * behind
    return Action(ActionKind.PUSH, float(start[0]), float(start[1]), _grip_z(cell, obj_id), direction)


def isolated_scene(cell: SimCell, spec: ObjectSpec, is_impurity: bool, rng: np.random.Generator) -> int:
    """A scene holding one object of kind ``spec`` lying flat somewhere in the workspace; returns its id."""
    obj = sample_object(spec, 1, is_impurity, rng)
    quat, size = flat_pose(obj, rng.uniform(0, 2 * math.pi))
    x0, y0, x1, y1 = drop_region(cell.recipe)
    table = cell.recipe.workspace.table_z
    pos = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1), table + size[2] / 2 + 0.001])
    cell.set_scene([Placement(obj, pos, quat)], f"isolated-{spec.name}")
    # at rest where it settled: a lying cylinder keeps the few mm/s its drop gave it, and with no rolling
    # resistance (hard plastic) would roll on through the arm's travel into a trial meant for it at rest
    cell.scene.set_object_pose(obj.id, cell.scene.object_pos(obj.id), cell.scene.object_quat(obj.id))
    cell.settle()
    cell.camera.restart()
    return obj.id
