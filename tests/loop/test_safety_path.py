"""Nothing outside the envelope ever reaches robot.execute, whatever the decision path is fed.

The whole path runs on the simulated cell: capture, heightmap, attention, policy, safety, execute. The
inputs are corrupted on the way in: a wrong camera pose (bad calibration), NaN and absurd heights, scrambled
attention results, and Q maps or policies that propose anything at all. A spy around the real robot
records every action it is asked to execute, and each one is checked against an independent statement of
the envelope (``tests/loop/envelope.py``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sorter.cell.base import Action, ActionKind, Robot
from sorter.cell.factory import Cell, open_cell
from sorter.geometry import N_ROTATIONS, Pose, rotation_angle
from sorter.loop import LoopOptions, RunLimits
from sorter.perception.heightmap import compute_heightmaps
from sorter.policy.base import Decision, Policy
from sorter.policy.heuristic import HeuristicPolicy
from sorter.runlog import RunLog
from tests.loop.conftest import make_loop
from tests.loop.envelope import actions, outside_reasons


class EnvelopeSpy(Robot):
    """The real simulated robot, with every action it receives checked and kept."""

    def __init__(self, inner: Robot, recipe):
        self.inner, self.recipe = inner, recipe
        self.executed: list[Action] = []
        self.violations: list[str] = []

    def execute(self, action):
        self.executed.append(action)
        self.violations += outside_reasons(action, self.recipe)
        return self.inner.execute(action)

    def connect(self):
        self.inner.connect()

    def home(self):
        self.inner.home()

    def status(self):
        return self.inner.status()

    def recover(self):
        self.inner.recover()

    def stop(self):
        self.inner.stop()

    def disconnect(self):
        self.inner.disconnect()


class QMapPolicy(Policy):
    """Acts at the argmax of an arbitrary Q map (NaN, inf and all), with an arbitrary height offset."""

    name = "q-map"

    def __init__(self, recipe, q_seed: int, z_offset: float, kind: ActionKind):
        self.grid = recipe.workspace.grid()
        self.rng = np.random.default_rng(q_seed)
        self.z_offset, self.kind = z_offset, kind

    def decide(self, attention, heightmaps, rng):
        n = self.grid.cells
        q = self.rng.normal(size=(N_ROTATIONS, n, n)) * 10.0 ** self.rng.uniform(-3, 30)
        q[self.rng.random(q.shape) < 0.01] = np.nan
        r, row, col = np.unravel_index(int(np.nanargmax(np.nan_to_num(q, nan=-np.inf))), q.shape)
        x, y = self.grid.center_of(row, col)
        z = float(heightmaps.height[row, col]) + self.z_offset
        action = Action(self.kind, float(x), float(y), z, rotation_angle(int(r)))
        return Decision(action, float(q[r, row, col]), float(q[r, row, col]), (int(r), int(row), int(col)),
                        q.max(axis=0))


class ListPolicy(Policy):
    """Proposes the given actions in turn: the most adversarial 'policy' there is."""

    name = "list"

    def __init__(self, actions):
        self.actions = list(actions)
        self.i = 0

    def decide(self, attention, heightmaps, rng):
        action = self.actions[self.i % len(self.actions)]
        self.i += 1
        return Decision(action, math.nan, math.nan, (0, 0, 0))


class ScrambledAttender:
    """The real attender with its result scrambled: random mode, random target mask, NaN centres."""

    def __init__(self, inner, seed: int):
        self.inner, self.rng = inner, np.random.default_rng(seed)

    def attend(self, heightmaps, frame=None):
        att = self.inner.attend(heightmaps, frame)
        mask = self.rng.random(att.target_mask.shape) < self.rng.uniform(0, 0.02)
        centre = (math.nan, math.nan) if self.rng.random() < 0.5 else att.crop_center_xy
        return dataclasses.replace(att, mode=str(self.rng.choice(["target", "cluster"])), target_mask=mask,
                                   crop_center_xy=centre, cluster=None)


def corrupted_heightmapper(kind: str, seed: int):
    """compute_heightmaps, then NaN holes, absurd towers or random noise in the height map."""
    rng = np.random.default_rng(seed)

    def heightmapper(frame, pose, grid):
        hm = compute_heightmaps(frame, pose, grid)
        h = hm.height.copy()
        if kind == "nan":
            h[rng.random(h.shape) < 0.05] = np.nan
        elif kind == "tower":
            r, c = rng.integers(0, grid.cells, 2)
            h[max(r - 10, 0):r + 10, max(c - 10, 0):c + 10] = rng.choice([0.5, 5.0, np.inf, -1.0])
        elif kind == "noise":
            h = (h + rng.normal(0, 0.05, h.shape)).astype(np.float32)
        return dataclasses.replace(hm, height=h)

    return heightmapper


@pytest.fixture(scope="module")
def shared(toy_recipe, tmp_path_factory):
    """One simulated cell and run log for every example (building a scene per example is too slow)."""
    with open_cell(toy_recipe, seed=1) as cell, RunLog(tmp_path_factory.mktemp("path") / "r.sqlite") as log:
        yield cell, log


def bad_pose(true_pose: Pose, rpy, shift) -> Pose:
    return Pose.from_xyz_rpy(tuple(shift), tuple(rpy)) @ true_pose


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    rpy=st.tuples(*[st.floats(-0.6, 0.6)] * 3),
    shift=st.tuples(*[st.floats(-0.3, 0.3)] * 3),
    heights=st.sampled_from(["none", "nan", "tower", "noise"]),
    policy=st.sampled_from(["heuristic", "q-grasp", "q-push", "list"]),
    proposals=st.lists(actions(), min_size=2, max_size=2),
    scramble=st.booleans(),
    z_offset=st.one_of(st.floats(-0.5, 0.5), st.just(math.nan), st.just(math.inf)),
    seed=st.integers(0, 10_000),
)
def test_no_corrupted_input_gets_an_action_outside_the_envelope_executed(
        shared, toy_recipe, attender, rpy, shift, heights, policy, proposals, scramble, z_offset, seed):
    sim_cell, log = shared
    spy = EnvelopeSpy(sim_cell.robot, toy_recipe)
    cell = Cell(sim_cell.camera, spy, bad_pose(sim_cell.camera_pose, rpy, shift), sim_cell.sim)
    if policy == "heuristic":
        chosen = HeuristicPolicy(toy_recipe)
    elif policy == "list":
        chosen = ListPolicy(proposals)
    else:
        kind = ActionKind.GRASP if policy == "q-grasp" else ActionKind.PUSH
        chosen = QMapPolicy(toy_recipe, seed, z_offset, kind)
    att = ScrambledAttender(attender, seed) if scramble else attender
    loop = make_loop(toy_recipe, cell, att, log, policy=chosen, limits=RunLimits(max_cycles=2),
                     options=LoopOptions(unattended=True, frames=False), seed=seed)
    loop._heightmapper = corrupted_heightmapper(heights, seed) if heights != "none" else compute_heightmaps
    loop.run()
    assert spy.violations == []
    assert loop.result.fault is None or loop.result.fault.code != "internal error"


def test_refused_actions_are_recorded_and_only_allowed_ones_executed(toy_recipe, cell, attender, runlog):
    """A policy proposing known bad and good actions: the bad ones are refused with their reason."""
    grid = toy_recipe.workspace.grid()
    cx, cy = grid.center
    proposals = [
        Action(ActionKind.GRASP, math.nan, cy, 0.01, 0.0),
        Action(ActionKind.GRASP, grid.x_max + 0.1, cy, 0.01, 0.0),
        Action(ActionKind.PUSH, cx, grid.y_max - 0.02, 0.01, math.pi / 2),
        Action(ActionKind.GRASP, cx, cy, -0.5, 0.0),
        Action(ActionKind.GRASP, cx, cy, 1.0, 0.0),
        Action(ActionKind.PUSH, cx, cy, 0.01, 0.0),
    ]
    spy = EnvelopeSpy(cell.robot, toy_recipe)
    spied = Cell(cell.camera, spy, cell.camera_pose, cell.sim)
    loop = make_loop(toy_recipe, spied, attender, runlog, policy=ListPolicy(proposals),
                     limits=RunLimits(max_cycles=8), options=LoopOptions(unattended=True, frames=False))
    loop.run()
    acted = [c for c in runlog.cycles(loop.run_id) if c.action_kind][:len(proposals)]
    assert [c.safety for c in acted] == ["refused"] * 5 + ["ok"]
    details = [c.safety_detail for c in acted]
    for word, detail in zip(["not finite", "outside workspace", "outside workspace", "below table",
                             "above maximum height"], details, strict=False):
        assert word in detail
    assert spy.violations == [] and spy.executed
    assert spy.executed[0] == proposals[-1]
