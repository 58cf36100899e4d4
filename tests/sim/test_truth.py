"""Ground truth: TCDD against a hand-placed scene, occlusion of a stacked object, object states."""

from __future__ import annotations

import numpy as np
import pytest

from sorter.cell.sim.scenarios import flat_pose
from sorter.cell.sim.scene import Placement
from sorter.cell.sim.shapes import SimObject
from sorter.cell.sim.truth import tcdd

CUBE = 0.03


def _cube(oid: int, impurity: bool = False) -> SimObject:
    color = np.array([200.0, 40, 40])
    return SimObject(oid, "cube", impurity, "box", np.full(3, CUBE), color, 4.0, 0.03, 0.8)


def _lying(obj: SimObject, x: float, y: float, z: float | None = None) -> Placement:
    quat, size = flat_pose(obj, 0.0)
    return Placement(obj, np.array([x, y, size[2] / 2 + 0.0005 if z is None else z]), quat)


def test_tcdd_formula_edges():
    assert tcdd(np.zeros(3), np.zeros((0, 3)), 0.085) == 1.0
    assert tcdd(np.zeros(3), np.zeros((3, 3)), 0.085) == 0.0
    assert tcdd(np.zeros(3), np.array([[0.2, 0, 0], [0.5, 0, 0]]), 0.085) == 1.0


def test_tcdd_of_a_hand_placed_scene(toy):
    toy.set_scene([_lying(_cube(1, True), 0.50, 0.0), _lying(_cube(2), 0.535, 0.0),
                   _lying(_cube(3), 0.50, 0.06), _lying(_cube(4), 0.70, 0.15)])
    eta = toy.recipe.gripper.max_opening
    expected = (0.035 + 0.06 + eta) / (3 * eta)  # paper 2, eq. 3
    assert toy.truth.tcdd(1) == pytest.approx(expected, abs=0.01)
    assert toy.truth.tcdd(4) == pytest.approx(1.0)
    assert toy.truth.tcdd(1, eta=0.03) == pytest.approx(1.0)


def test_an_object_under_another_is_occluded(toy):
    toy.set_scene([_lying(_cube(1, True), 0.50, 0.0), _lying(_cube(2), 0.51, 0.0, 1.5 * CUBE + 0.001)])
    toy.camera.read()
    assert toy.truth.occlusion_rate(1) > 0.4
    assert toy.truth.occlusion_rate(2) == pytest.approx(0.0, abs=0.02)
    state = toy.truth.object(1)
    assert state.is_impurity and state.in_workspace and not state.held and not state.in_bin


def test_objects_off_the_workspace_are_marked_out(toy):
    grid = toy.recipe.workspace.grid()
    toy.set_scene([_lying(_cube(1, True), grid.x_max + 0.1, 0.0), _lying(_cube(2), 0.5, 0.0)])
    states = {s.id: s for s in toy.truth.objects()}
    assert not states[1].in_workspace and states[2].in_workspace
    assert toy.truth.impurities_remaining() == 0
