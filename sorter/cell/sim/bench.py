"""Benchmark of the simulated cell: how fast it runs and whether its physics can be trusted.

Speed is wall-clock time of this machine (printed, never asserted); trust figures are counts over seeded
trials of scripted primitives on isolated items, so they mean the same on any machine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np

from sorter.cell.base import Outcome
from sorter.cell.sim.cell import SimCell
from sorter.cell.sim.scenarios import SCENARIOS
from sorter.cell.sim.scripted import beside_action, grasp_action, isolated_scene, push_action
from sorter.geometry import PUSH_LENGTH
from sorter.recipe import ObjectSpec, Recipe

BESIDE_DISTANCE = 0.03  # m, the grasp beside an item that must fail (issue #2, section 7)
MIN_PUSH_TRAVEL = 0.06  # m an item must move along the push (issue #2, section 7)
GRASP_SUCCESS_TARGET = 0.95  # issue #2, section 7
SPEED_SCENARIO = "30"
SPEED_SEED = 1


@dataclass
class SpeedFigures:
    """Wall-clock figures of one recipe's cell on this machine."""

    steps_per_s: float = 0.0  # physics steps/s with the 30-object scene, as the cell runs (sleeping on)
    steps_per_s_awake: float = 0.0  # the same with all 30 objects awake (sleeping off): worst case
    grasp_wall_s: float = 0.0
    push_wall_s: float = 0.0
    frame_first_ms: float = 0.0  # a frame of a fresh scene (every moving object cast)
    frame_ms: float = 0.0  # a frame after a primitive (only what moved is cast again)
    reset_s: dict[str, float] = field(default_factory=dict)
    first_reset_s: float = 0.0  # a new SimCell's first reset, static background included
    realtime_factor: float = 0.0  # simulated seconds per wall second during primitives


@dataclass
class ShapeTrust:
    """Physics-trust counts for one kind of object."""

    name: str
    shape: str
    trials: int = 0
    delivered: int = 0  # grasped at the true centre, held through lift and transport, dropped in the bin
    lost_in_transport: int = 0  # held after the lift but not delivered
    beside_trials: int = 0
    beside_held: int = 0  # grasps 3 cm beside the item that nevertheless held something
    push_trials: int = 0
    push_travel: list[float] = field(default_factory=list)  # m moved along the push direction
    out_of_world: int = 0  # items below the table or off it (not in the bin) after a trial

    @property
    def success_rate(self) -> float:
        return self.delivered / self.trials if self.trials else 0.0

    @property
    def push_ok(self) -> int:
        return sum(t >= MIN_PUSH_TRAVEL for t in self.push_travel)

    def passed(self) -> bool:
        return (self.success_rate >= GRASP_SUCCESS_TARGET and self.beside_held == 0
                and self.push_ok == self.push_trials and self.out_of_world == 0
                and self.lost_in_transport == 0)


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def measure_speed(recipe: Recipe, resets: int = 3, primitives: int = 5) -> SpeedFigures:
    """Speed of the cell on this machine: physics, primitives, frames, resets."""
    figures = SpeedFigures()
    cell = SimCell(recipe)
    _, figures.first_reset_s = _timed(lambda: cell.reset(SPEED_SCENARIO, SPEED_SEED))
    figures.frame_first_ms = 1e3 * _timed(cell.camera.read)[1]
    figures.steps_per_s, figures.realtime_factor, figures.grasp_wall_s, figures.push_wall_s, \
        figures.frame_ms = _primitive_speed(cell, primitives)
    cell.reset(SPEED_SCENARIO, SPEED_SEED)
    figures.steps_per_s_awake = _awake_steps(cell)
    for name in SCENARIOS:
        if name in recipe.sim.scenarios:
            walls = [_timed(lambda n=name, s=seed: cell.reset(n, s))[1] for seed in range(1, 2 * resets, 2)]
            figures.reset_s[name] = float(np.mean(walls))
    return figures


def _primitive_speed(cell: SimCell, count: int) -> tuple[float, float, float, float, float]:
    """Steps/s and realtime factor while primitives run, wall s per grasp and push, ms per frame."""
    steps = [0]
    rng = np.random.default_rng(SPEED_SEED)
    grasps, pushes, frames = [], [], []
    sim_time, wall = 0.0, 0.0
    for k in range(2 * count):
        cell.rig.on_step = lambda n: steps.__setitem__(0, steps[0] + n)
        targets = [s for s in cell.truth.objects() if s.in_workspace]
        if not targets:
            break
        target = targets[int(rng.integers(len(targets)))]
        direction = rng.uniform(0, 2 * math.pi)
        action = grasp_action(cell, target.id) if k % 2 == 0 else push_action(cell, target.id, direction)
        t0 = cell.scene.data.time
        _, seconds = _timed(lambda a=action: cell.robot.execute(a))
        (grasps if k % 2 == 0 else pushes).append(seconds)
        sim_time += cell.scene.data.time - t0
        wall += seconds
        frames.append(1e3 * _timed(cell.camera.read)[1])
    return (steps[0] / wall if wall else 0.0, sim_time / wall if wall else 0.0, float(np.mean(grasps)),
            float(np.mean(pushes)), float(np.mean(frames)))


def _awake_steps(cell: SimCell, steps: int = 1000) -> float:
    m, d = cell.scene.model, cell.scene.data
    m.opt.enableflags &= ~int(mujoco.mjtEnableBit.mjENBL_SLEEP)
    try:
        _, seconds = _timed(lambda: mujoco.mj_step(m, d, steps))
    finally:
        m.opt.enableflags |= int(mujoco.mjtEnableBit.mjENBL_SLEEP)
    return steps / seconds


def measure_trust(recipe: Recipe, grasps: int = 50, others: int = 10, seed: int = 1) -> list[ShapeTrust]:
    """Scripted primitives on isolated items of every kind in the recipe (seeded)."""
    cell = SimCell(recipe)
    rng = np.random.default_rng(seed)
    out = []
    for is_impurity, specs in ((False, recipe.sim.items), (True, recipe.sim.impurities)):
        for spec in specs:
            out.append(shape_trust(cell, spec, is_impurity, rng, grasps, others))
    return out


def shape_trust(cell: SimCell, spec: ObjectSpec, is_impurity: bool, rng: np.random.Generator,
                grasps: int, others: int) -> ShapeTrust:
    """Grasp at the centre ``grasps`` times, beside and push ``others`` times each."""
    result = ShapeTrust(spec.name, spec.shape)
    for _ in range(grasps):
        oid = isolated_scene(cell, spec, is_impurity, rng)
        outcome = cell.robot.execute(grasp_action(cell, oid))
        result.trials += 1
        result.delivered += int(outcome.delivered)
        result.lost_in_transport += int(outcome.grasp_held and not outcome.delivered)
        result.out_of_world += int(_out_of_world(cell, oid))
    for _ in range(others):
        oid = isolated_scene(cell, spec, is_impurity, rng)
        outcome = cell.robot.execute(beside_action(cell, oid, BESIDE_DISTANCE))
        result.beside_trials += 1
        result.beside_held += int(outcome.grasp_held)
        result.out_of_world += int(_out_of_world(cell, oid))
    for _ in range(others):
        oid = isolated_scene(cell, spec, is_impurity, rng)
        result.push_travel.append(push_travel(cell, oid, rng.uniform(0, 2 * math.pi)))
        result.push_trials += 1
        result.out_of_world += int(_out_of_world(cell, oid))
    return result


def push_travel(cell: SimCell, obj_id: int, direction: float) -> float:
    """Metres the object moved along ``direction`` when pushed through its centre."""
    before = cell.truth.object(obj_id).position
    outcome: Outcome = cell.robot.execute(push_action(cell, obj_id, direction))
    if not outcome.executed:
        return 0.0
    after = cell.truth.object(obj_id).position
    return float(np.dot(after[:2] - before[:2], [math.cos(direction), math.sin(direction)]))


def _out_of_world(cell: SimCell, obj_id: int) -> bool:
    state = cell.truth.object(obj_id)
    return not (state.in_bin or cell.on_table(state.position))


def speed_table(name: str, f: SpeedFigures) -> list[str]:
    """Printable lines of the speed figures with their targets."""
    rows = [
        ("physics steps/s, 30 objects, as run", f"{f.steps_per_s:,.0f}", ">= 10,000"),
        ("physics steps/s, 30 objects all awake", f"{f.steps_per_s_awake:,.0f}", "(worst case)"),
        ("simulated s per wall s in primitives", f"{f.realtime_factor:.1f}", ""),
        ("wall s per grasp primitive", f"{f.grasp_wall_s:.3f}", "<= 0.3"),
        ("wall s per push primitive", f"{f.push_wall_s:.3f}", "<= 0.3"),
        ("ms per 640x480 frame after a primitive", f"{f.frame_ms:.1f}", "<= 60"),
        ("ms per frame of a fresh scene", f"{f.frame_first_ms:.1f}", "<= 60"),
        ("s for a new cell's first reset", f"{f.first_reset_s:.3f}", ""),
    ] + [(f"s per reset, scenario {k}", f"{v:.3f}", "<= 0.5") for k, v in f.reset_s.items()]
    return [f"speed ({name})"] + [f"  {a:<42s} {b:>10s}  {c}" for a, b, c in rows]


def trust_table(name: str, results: list[ShapeTrust]) -> list[str]:
    """Printable lines of the physics-trust figures, one row per kind of object."""
    head = (f"  {'kind':<16s} {'shape':<9s} {'grasp ok':>10s} {'lost':>5s} {'beside held':>12s} "
            f"{'push >= 6cm':>12s} {'push min cm':>12s} {'off world':>10s}  verdict")
    lines = [f"physics trust ({name})", head]
    for r in results:
        travel = min(r.push_travel) * 100 if r.push_travel else float("nan")
        lines.append(
            f"  {r.name:<16s} {r.shape:<9s} {r.delivered:>4d}/{r.trials:<3d} {r.success_rate:>3.0%}"
            f" {r.lost_in_transport:>4d} {r.beside_held:>7d}/{r.beside_trials:<4d}"
            f" {r.push_ok:>7d}/{r.push_trials:<4d} {travel:>12.1f} {r.out_of_world:>10d}"
            f"  {'pass' if r.passed() else 'FAIL'}")
    lines.append(f"  push length {PUSH_LENGTH * 100:.0f} cm; targets: grasp ok >= "
                 f"{GRASP_SUCCESS_TARGET:.0%}, "
                 f"nothing held beside, every push >= {MIN_PUSH_TRAVEL * 100:.0f} cm, "
                 "nothing lost in transport or off the world")
    return lines
