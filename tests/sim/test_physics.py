"""Physics that can be trusted, sampled on seeded isolated items (the benchmark runs the full counts)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sorter.cell.base import Action, ActionKind, ProtectiveStop, RobotStatus
from sorter.cell.sim.bench import BESIDE_DISTANCE, MIN_PUSH_TRAVEL, shape_trust
from sorter.cell.sim.scene import Placement
from sorter.cell.sim.scripted import grasp_action, isolated_scene, push_action
from sorter.cell.sim.shapes import sample_object
from tests.conftest import RECIPE_IDS

GRASPS = 8  # per kind; the benchmark runs 50
OTHERS = 3  # beside grasps and pushes per kind


@pytest.mark.parametrize("recipe", RECIPE_IDS)
def test_scripted_primitives_behave_physically_for_every_kind(cells, recipe):
    cell = cells[recipe]
    rng = np.random.default_rng(11)
    kinds = [(False, s) for s in cell.recipe.sim.items] + [(True, s) for s in cell.recipe.sim.impurities]
    for is_impurity, spec in kinds:
        r = shape_trust(cell, spec, is_impurity, rng, GRASPS, OTHERS)
        assert r.delivered >= GRASPS - 1, f"{spec.name}: {r.delivered}/{GRASPS} centre grasps delivered"
        assert r.lost_in_transport == 0, f"{spec.name}: held items dropped on the way"
        assert r.beside_held == 0, f"{spec.name}: a grasp {BESIDE_DISTANCE} m beside held something"
        assert min(r.push_travel) >= MIN_PUSH_TRAVEL, f"{spec.name}: push travels {r.push_travel}"
        assert r.out_of_world == 0


def test_grasp_reads_held_from_the_finger_width_and_delivers_to_the_bin(toy):
    oid = isolated_scene(toy, toy.recipe.sim.impurities[0], True, np.random.default_rng(2))
    width = min(toy.scene_object(oid).extents[:2])
    outcome = toy.robot.execute(grasp_action(toy, oid))
    assert outcome.executed and outcome.grasp_held and outcome.delivered
    assert abs(outcome.finger_width - width) < 0.006
    state = toy.truth.object(oid)
    assert state.in_bin and not state.in_workspace
    assert toy.truth.impurities_remaining() == 0


def test_descent_never_drives_the_fingers_through_the_table(toy):
    oid = isolated_scene(toy, toy.recipe.sim.items[0], False, np.random.default_rng(3))
    lowest = [math.inf]
    toy.rig.on_step = lambda n: lowest.__setitem__(0, min(lowest[0], toy.rig.pose[2]))
    state = toy.truth.object(oid)
    try:
        outcome = toy.robot.execute(Action(ActionKind.GRASP, state.position[0] + 0.1, state.position[1],
                                           toy.recipe.workspace.table_z - 0.05, 0.0))
    finally:
        toy.rig.on_step = None
    assert outcome.executed and not outcome.grasp_held
    assert lowest[0] >= toy.recipe.workspace.table_z - 0.001


def test_durations_are_modelled_arm_time_and_advance_the_clock(toy):
    oid = isolated_scene(toy, toy.recipe.sim.items[0], False, np.random.default_rng(4))
    start = toy.time
    grasp = toy.robot.execute(grasp_action(toy, oid))
    assert 2.0 < grasp.duration < 12.0
    assert toy.time == pytest.approx(start + grasp.duration)
    oid = isolated_scene(toy, toy.recipe.sim.items[0], False, np.random.default_rng(5))
    push = toy.robot.execute(push_action(toy, oid, 0.3))
    contact = toy.recipe.robot.contact_speed
    assert 0.1 / contact < push.duration < 10.0, "a 10 cm push at contact speed plus the moves"


def test_protective_stop_halts_the_next_action_until_recovered(toy):
    oid = isolated_scene(toy, toy.recipe.sim.items[0], False, np.random.default_rng(6))
    toy.faults.protective_stop_next_action = True
    start = toy.truth.object(oid).position
    with pytest.raises(ProtectiveStop):
        toy.robot.execute(grasp_action(toy, oid))
    assert toy.robot.status() == RobotStatus.PROTECTIVE_STOP
    assert toy.rig.pose[2] > toy.truth.object(oid).position[2], "stopped mid-descent, above the item"
    with pytest.raises(ProtectiveStop):
        toy.robot.execute(grasp_action(toy, oid))
    toy.robot.recover()
    assert toy.robot.status() == RobotStatus.READY
    assert np.linalg.norm(toy.truth.object(oid).position - start) < 0.01
    assert toy.robot.execute(grasp_action(toy, oid)).delivered


def test_injected_slip_loses_the_held_item_on_the_way(toy):
    oid = isolated_scene(toy, toy.recipe.sim.items[0], False, np.random.default_rng(7))
    toy.faults.slip_next_grasp = True
    outcome = toy.robot.execute(grasp_action(toy, oid))
    assert outcome.grasp_held and not outcome.delivered
    state = toy.truth.object(oid)
    assert not state.in_bin and not state.held
    assert not toy.faults.slip_next_grasp
    oid = isolated_scene(toy, toy.recipe.sim.items[0], False, np.random.default_rng(8))
    assert toy.robot.execute(grasp_action(toy, oid)).delivered, "the slip was for one grasp only"


def test_push_moves_a_free_item_along_the_push(toy):
    oid = isolated_scene(toy, toy.recipe.sim.items[1], False, np.random.default_rng(9))
    before = toy.truth.object(oid).position
    toy.robot.execute(push_action(toy, oid, -0.8))
    moved = toy.truth.object(oid).position - before
    along = moved[0] * math.cos(-0.8) + moved[1] * math.sin(-0.8)
    assert along >= MIN_PUSH_TRAVEL
    assert abs(moved[0] * math.sin(-0.8) - moved[1] * math.cos(-0.8)) < along


def test_primitives_leave_the_camera_view_clear(toy):
    oid = isolated_scene(toy, toy.recipe.sim.items[0], False, np.random.default_rng(10))
    toy.robot.execute(push_action(toy, oid, 1.0))
    assert not toy.gripper_in_view()
    toy.camera.read()
    assert set(np.unique(toy.truth.visible_mask())) <= {0, oid}


def _rolled(cell, spec, seed: int) -> float:
    """Distance a lone item travels after being set rolling at 0.25 m/s across the table."""
    obj = sample_object(spec, 1, False, np.random.default_rng(seed))
    g = cell.recipe.workspace.grid()
    r = obj.extents[2] / 2
    table = cell.recipe.workspace.table_z
    start = np.array([(g.x_min + g.x_max) / 2 - 0.05, (g.y_min + g.y_max) / 2, table + r + 0.0005])
    rolling = np.array([0.0, 0.25, 0.0, -0.25 / r, 0.0, 0.0])  # along +y, turning about x without slip
    cell.load([Placement(obj, start, np.array([1.0, 0.0, 0.0, 0.0]), rolling)])
    cell.settle(3.0)
    return float(np.hypot(*(cell.scene.object_pos(1)[:2] - start[:2])))


def test_rolling_friction_stops_rolling_produce_sooner(cells):
    """Potatoes carry rolling friction in their recipe: set rolling, they stop within a third of the
    way the same smooth ellipsoids roll without it (measured: 1.3 cm against 4.5 cm over six seeds)."""
    cell = cells["potatoes-clods"]
    spec = cell.recipe.sim.items[0]
    assert spec.rolling_friction > 0
    free = spec.model_copy(update={"rolling_friction": 0.0})
    with_friction = np.mean([_rolled(cell, spec, s) for s in range(6)])
    without = np.mean([_rolled(cell, free, s) for s in range(6)])
    assert without > 0.03
    assert with_friction < without / 3


def _fastest_object_speed(cell) -> float:
    """m/s of the fastest object (linear speed of its free joint)."""
    qvel = cell.scene.data.qvel
    return max((float(np.linalg.norm(qvel[a:a + 3])) for a in cell.scene.dadr_of.values()), default=0.0)


def test_the_world_runs_on_while_the_arm_travels(toy):
    """Pushes set crowded items rolling; the arm's travel home takes modelled time, and the physics must
    run through it, so the camera's next image shows the scene at rest (it froze mid-roll before)."""
    rng = np.random.default_rng(5)
    moving = []
    for seed in (1, 3, 5):
        toy.reset("30", seed)
        for _ in range(4):
            target = [s for s in toy.truth.objects() if s.in_workspace]
            oid = target[int(rng.integers(len(target)))].id
            start = toy.scene.data.time
            outcome = toy.robot.execute(push_action(toy, oid, rng.uniform(0, 2 * math.pi)))
            assert toy.scene.data.time - start >= 0.8 * outcome.duration  # physics covered the arm's time
            moving.append(_fastest_object_speed(toy))
    assert max(moving) < 0.01, f"objects still moving at the next image: {np.round(moving, 3)}"


def test_a_row_pinched_as_one_is_held_and_delivered(toy):
    """Three cubes in a row, the jaws closing along it: each pad touches only its end cube, the middle
    one is held by the others. All three are carried to the bin, and the outcome says so: the held set
    is every object pressed towards both pads along the jaw axis, not only what touches both (nothing
    here). A fourth cube riding on the middle one is carried but not held: whether it stays on or falls
    off on the way, the row was delivered."""
    import dataclasses

    from sorter.cell.sim.scripted import _grip_z

    side = 0.025
    rng = np.random.default_rng(0)
    cubes = [dataclasses.replace(sample_object(toy.recipe.sim.items[0], k + 1, k == 1, rng),
                                 extents=np.array([side] * 3)) for k in range(4)]
    x0, y0 = toy.recipe.workspace.grid().center
    table = toy.recipe.workspace.table_z
    row = [np.array([x0 + (k - 1) * (side + 0.0005), y0, table + side / 2 + 0.001]) for k in range(3)]
    rider = np.array([x0, y0, table + 1.5 * side + 0.002])
    toy.set_scene([Placement(c, p, np.array([1.0, 0.0, 0.0, 0.0]))
                   for c, p in zip(cubes, [*row, rider], strict=True)], "row")
    toy.settle()
    outcome = toy.robot.execute(Action(ActionKind.GRASP, x0, y0, _grip_z(toy, 2), 0.0))
    assert outcome.grasp_held and outcome.finger_width > 2.5 * side
    assert toy.robot.last_held == {1, 2, 3}
    assert all(toy.truth.object(c.id).in_bin for c in cubes[:3])
    assert outcome.delivered
