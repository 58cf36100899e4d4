"""The safety envelope: typed refusals, the height clamp, the carry path, and a property over any input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sorter.cell.base import Action, ActionKind
from sorter.cell.safety import Refusal, SafetyEnvelope
from sorter.recipe import load_recipe
from tests.loop.envelope import actions, outside_reasons

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture(scope="module")
def recipe():
    return load_recipe(RECIPES / "toy-blocks.yaml")


@pytest.fixture(scope="module")
def envelope(recipe):
    return SafetyEnvelope.from_recipe(recipe)


@pytest.fixture(scope="module")
def flat(recipe):
    n = recipe.workspace.cells
    return np.zeros((n, n), np.float32)


def grasp(x, y, z=0.012, angle=0.0):
    return Action(ActionKind.GRASP, x, y, z, angle)


def push(x, y, z=0.012, angle=0.0):
    return Action(ActionKind.PUSH, x, y, z, angle)


def test_a_grasp_in_the_middle_is_allowed_unchanged(envelope, flat, recipe):
    cx, cy = recipe.workspace.grid().center
    verdict = envelope.check(grasp(cx, cy, angle=0.3), flat)
    assert verdict.allowed and verdict.label == "ok"
    assert verdict.action == grasp(cx, cy, angle=0.3)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(envelope, flat, value):
    for action in (grasp(value, 0.0), grasp(0.5, value), grasp(0.5, 0.0, z=value),
                   grasp(0.5, 0.0, angle=value)):
        verdict = envelope.check(action, flat)
        assert not verdict.allowed and verdict.refusal is Refusal.NOT_FINITE


def test_the_open_jaws_must_fit_inside_the_workspace(envelope, flat, recipe):
    """Near the x_min edge the jaws fit when they lie along y but not along x."""
    g = recipe.gripper
    x = recipe.workspace.bounds.x[0] + g.pad_width / 2 + 0.004
    assert envelope.check(grasp(x, 0.0, angle=math.pi / 2), flat).allowed
    verdict = envelope.check(grasp(x, 0.0, angle=0.0), flat)
    assert verdict.refusal is Refusal.OUTSIDE_WORKSPACE
    assert "outside" in verdict.describe()


def test_a_push_must_keep_its_whole_stroke_inside(envelope, flat, recipe):
    """A push starting inside but whose 10 cm stroke ends beyond y_max is refused; reversed it is fine."""
    y = recipe.workspace.bounds.y[1] - 0.05
    assert envelope.check(push(0.5, y, angle=math.pi / 2), flat).refusal is Refusal.OUTSIDE_WORKSPACE
    assert envelope.check(push(0.5, y, angle=-math.pi / 2), flat).allowed


def test_heights_below_the_table_are_raised_a_little_or_refused(envelope, flat, recipe):
    table = recipe.workspace.table_z
    raised = envelope.check(grasp(0.5, 0.0, z=table - 0.005), flat)
    assert raised.allowed and raised.adjusted and raised.action.z == pytest.approx(envelope.z_min)
    refused = envelope.check(grasp(0.5, 0.0, z=table - 0.05), flat)
    assert refused.refusal is Refusal.BELOW_TABLE


def test_heights_above_the_travel_height_are_refused(envelope, flat, recipe):
    z = recipe.workspace.table_z + recipe.robot.travel_height + 0.001
    assert envelope.check(grasp(0.5, 0.0, z=z), flat).refusal is Refusal.ABOVE_MAX_HEIGHT


def test_a_tall_object_between_grasp_and_bin_blocks_the_carry(envelope, flat, recipe):
    """The bin lies towards +y; a 20 cm tower on the way blocks a grasp, the same tower behind it does not."""
    grid = recipe.workspace.grid()
    heights = flat.copy()
    row, col = grid.cell_of(0.524, 0.10)
    heights[row - 5:row + 5, col - 5:col + 5] = 0.20
    verdict = envelope.check(grasp(0.524, -0.05), heights)
    assert verdict.refusal is Refusal.BIN_PATH_BLOCKED
    assert envelope.check(grasp(0.524, 0.17), heights).allowed
    assert envelope.check(push(0.524, -0.05), heights).allowed


def test_a_grasp_needs_a_valid_height_map(envelope, flat):
    assert envelope.check(grasp(0.5, 0.0), None).refusal is Refusal.NO_HEIGHTMAP
    assert envelope.check(grasp(0.5, 0.0), flat[:10, :10]).refusal is Refusal.NO_HEIGHTMAP
    nan_map = np.full_like(flat, np.nan)
    assert envelope.check(grasp(0.5, 0.0), nan_map).refusal is Refusal.NO_HEIGHTMAP


@st.composite
def height_maps(draw, n: int):
    kind = draw(st.sampled_from(["flat", "random", "nan", "tower"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "flat":
        return np.zeros((n, n), np.float32)
    if kind == "random":
        return (rng.random((n, n)) * draw(st.floats(0.0, 0.5))).astype(np.float32)
    h = np.zeros((n, n), np.float32)
    r, c = rng.integers(0, n, 2)
    h[max(r - 8, 0):r + 8, max(c - 8, 0):c + 8] = np.nan if kind == "nan" else 0.3
    return h


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_input_gets_an_action_outside_the_envelope_allowed(envelope, recipe, data):
    action = data.draw(actions())
    heights = data.draw(height_maps(recipe.workspace.cells))
    verdict = envelope.check(action, heights)
    if verdict.allowed:
        assert outside_reasons(verdict.action, recipe) == []
        assert verdict.action.kind == action.kind
    else:
        assert verdict.refusal is not None and verdict.detail
