"""The heuristic policy on synthetic height maps with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sorter.cell.base import ActionKind
from sorter.cell.safety import SafetyEnvelope
from sorter.geometry import PUSH_LENGTH, wrap_angle
from sorter.perception.attention import Attention
from sorter.perception.heightmap import Heightmaps
from sorter.perception.occlusion import Cluster
from sorter.policy.heuristic import HeuristicPolicy


@pytest.fixture(scope="module")
def policy(toy_recipe):
    return HeuristicPolicy(toy_recipe)


def scene(grid, blocks):
    """Height maps holding axis-aligned blocks given as (x0, x1, y0, y1, height) in metres."""
    n = grid.cells
    height = np.zeros((n, n), np.float32)
    for x0, x1, y0, y1, h in blocks:
        r0, c0 = grid.cell_of(x0, y0)
        r1, c1 = grid.cell_of(x1, y1)
        height[max(r0, 0):r1, max(c0, 0):c1] = h
    return Heightmaps(np.zeros((n, n, 3), np.uint8), height, np.ones((n, n), bool), grid)


def target(hm, block):
    x0, x1, y0, y1, _ = block
    r0, c0 = hm.grid.cell_of(x0, y0)
    r1, c1 = hm.grid.cell_of(x1, y1)
    mask = np.zeros(hm.shape, bool)
    mask[max(r0, 0):r1, max(c0, 0):c1] = True
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Attention("target", "test", mask, None, (cx, cy), None, [], None, np.zeros(hm.shape, np.float32))


def test_grasps_an_isolated_brick_across_its_narrow_axis(policy, toy_recipe):
    grid = toy_recipe.workspace.grid()
    brick = (0.50, 0.55, 0.00, 0.024, 0.03)
    hm = scene(grid, [brick])
    d = policy.decide(target(hm, brick), hm, np.random.default_rng(1))
    a = d.action
    assert a.kind is ActionKind.GRASP
    assert abs(a.x - 0.525) < 0.003 and abs(a.y - 0.012) < 0.003
    assert abs(abs(wrap_angle(a.angle)) - math.pi / 2) < 1e-6
    assert 0.01 <= a.z - grid.table_z <= 0.02


def test_a_target_at_the_border_is_grasped_from_inside_the_envelope(policy, toy_recipe):
    grid = toy_recipe.workspace.grid()
    cube = (0.66, 0.69, grid.y_max - 0.024, grid.y_max, 0.03)
    hm = scene(grid, [cube])
    d = policy.decide(target(hm, cube), hm, np.random.default_rng(1))
    assert d.action.kind is ActionKind.GRASP
    assert SafetyEnvelope.from_recipe(toy_recipe).check(d.action, hm.height).allowed
    assert d.action.y > grid.y_max - 0.024


def test_a_boxed_in_target_is_pushed_from_the_free_side(policy, toy_recipe):
    """Neighbours on three sides: no jaw orientation lands clear, so it pushes from free table."""
    grid = toy_recipe.workspace.grid()
    cube = (0.51, 0.54, -0.015, 0.015, 0.03)
    ring = [(0.47, 0.505, -0.06, 0.06, 0.04), (0.545, 0.58, -0.06, 0.06, 0.04),
            (0.505, 0.545, 0.02, 0.06, 0.04)]
    hm = scene(grid, [cube, *ring])
    d = policy.decide(target(hm, cube), hm, np.random.default_rng(1))
    a = d.action
    assert a.kind is ActionKind.PUSH
    r0, c0 = grid.cell_of(a.x, a.y)
    assert hm.height[r0, c0] == 0.0 and a.y < -0.015
    assert math.sin(a.angle) > 0.9 and abs(a.x - 0.525) < 0.01


def test_cluster_mode_pushes_through_the_cluster_from_free_table(policy, toy_recipe):
    grid = toy_recipe.workspace.grid()
    heap = (0.50, 0.56, -0.03, 0.03, 0.05)
    hm = scene(grid, [heap])
    cluster = Cluster(hm.height > 0.005, (0.0, 0.0), (0.53, 0.0), 0.0036, 0.05)
    att = Attention("cluster", "test", np.ones(hm.shape, bool), None, (0.53, 0.0), None, [], cluster,
                    np.zeros(hm.shape, np.float32))
    d = policy.decide(att, hm, np.random.default_rng(3))
    a = d.action
    assert a.kind is ActionKind.PUSH
    end = np.array([a.x + PUSH_LENGTH * math.cos(a.angle), a.y + PUSH_LENGTH * math.sin(a.angle)])
    start = np.array([a.x, a.y])
    centre = np.array([0.53, 0.0])
    along = (centre - start) @ (end - start) / PUSH_LENGTH
    offset = np.linalg.norm(start + along * (end - start) / PUSH_LENGTH - centre)
    assert 0 < along < PUSH_LENGTH and offset < 0.01
    r0, c0 = grid.cell_of(a.x, a.y)
    assert hm.height[r0, c0] == 0.0
