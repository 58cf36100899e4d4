"""A push at a sighting strips the top layer: an item lying squarely on an impurity rides along with it
under a push at the table, and comes off it under a push at the top layer's height."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sorter.cell.base import Action, ActionKind
from sorter.cell.safety import SafetyEnvelope
from sorter.cell.sim.scene import Placement
from sorter.cell.sim.shapes import sample_object
from sorter.perception.heightmap import Heightmaps, compute_heightmaps
from sorter.policy.agent import PUSH_HEIGHT, STRIP_DEPTH, strip
from sorter.recipe import load_recipe

RECIPE = load_recipe("recipes/toy-blocks.yaml")
ENVELOPE = SafetyEnvelope.from_recipe(RECIPE)
GRID = ENVELOPE.grid
BRICK = np.array([0.05, 0.026, 0.026])
UPRIGHT = np.array([1.0, 0.0, 0.0, 0.0])


def _flat(*blocks: tuple[slice, slice, float]) -> Heightmaps:
    """Height maps of a bare table with ``(rows, cols, height)`` blocks on it."""
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    for rows, cols, h in blocks:
        height[rows, cols] = h
    color = np.zeros((GRID.cells, GRID.cells, 3), np.uint8)
    return Heightmaps(color, height, np.ones_like(height, bool), GRID)


def test_strip_raises_a_push_to_the_top_layer_along_its_stroke_and_never_lowers_it():
    x, y = GRID.center
    push = Action(ActionKind.PUSH, x, y, GRID.table_z + PUSH_HEIGHT, 0.0)
    r, c = GRID.cell_of(x + 0.06, y)
    around = (slice(int(r) - 6, int(r) + 7), slice(int(c) - 12, int(c) + 13))
    stack = _flat((*around, 0.052))
    assert strip(push, stack, ENVELOPE.push_length).z == pytest.approx(GRID.table_z + 0.052 - STRIP_DEPTH)
    behind = Action(ActionKind.PUSH, x, y, push.z, math.pi)  # the stroke runs away from the stack
    assert strip(behind, stack, ENVELOPE.push_length).z == push.z
    assert strip(push, _flat(), ENVELOPE.push_length).z == push.z
    low = _flat((*around, 0.02))
    assert strip(push, low, ENVELOPE.push_length).z == push.z, "a single layer is pushed at the table"
    high = dataclasses.replace(push, z=GRID.table_z + 0.045)
    assert strip(high, stack, ENVELOPE.push_length).z == high.z


@pytest.mark.parametrize("seed", [0, 1])
def test_a_stripping_push_uncovers_an_impurity_that_a_push_at_the_table_carries_along(seed):
    """A product brick lying squarely on an impurity brick; a push from 5 cm beside, towards them."""
    from sorter.cell.sim.cell import SimCell

    cell = SimCell(RECIPE)
    rng = np.random.default_rng(seed)
    x0, y0 = GRID.center
    table = RECIPE.workspace.table_z
    bottom = dataclasses.replace(sample_object(RECIPE.sim.impurities[2], 1, True, rng), extents=BRICK)
    top = dataclasses.replace(sample_object(RECIPE.sim.items[1], 2, False, rng), extents=BRICK)
    placed = [Placement(bottom, np.array([x0, y0, table + BRICK[2] / 2 + 0.0005]), UPRIGHT),
              Placement(top, np.array([x0, y0, table + 1.5 * BRICK[2] + 0.001]), UPRIGHT)]
    start = Action(ActionKind.PUSH, x0, y0 - 0.05 - BRICK[1] / 2, table + PUSH_HEIGHT, math.pi / 2)
    gaps = {}
    for name in ("table", "strip"):
        cell.set_scene(placed, f"stack-{seed}")
        push = start
        if name == "strip":
            hm = compute_heightmaps(cell.camera.read(), cell.camera_pose, GRID)
            push = strip(start, hm, ENVELOPE.push_length)
            assert push.z > table + BRICK[2], "the fingers pass over the impurity"
        cell.robot.execute(ENVELOPE.check(push, None).action)
        b, t = cell.truth.object(1).position, cell.truth.object(2).position
        cell.camera.read()
        seen = int((cell.truth.visible_mask() == 1).sum())
        gaps[name] = (float(np.hypot(*(t[:2] - b[:2]))), float(b[1] - y0), seen)
    assert gaps["table"][0] < 0.01 and gaps["table"][1] > 0.03, f"rode along: {gaps}"
    assert gaps["table"][2] < 100, f"still hidden: {gaps}"
    assert gaps["strip"][0] > 0.03, f"stripped off: {gaps}"
    assert gaps["strip"][2] > 600, f"uncovered (its whole top face shows about 1100 pixels): {gaps}"
