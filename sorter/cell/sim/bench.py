"""Benchmark of the simulated cell: how fast it runs and whether its physics can be trusted.

Speed is wall-clock time of this machine (printed, never asserted); trust figures are counts over seeded
trials of scripted primitives on isolated items, so they mean the same on any machine.
"""

from __future__ import annotations

import math
import os
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
SPEED_SEEDS = (1, 3, 5, 7, 9)  # crowds the primitives run in: how many objects a primitive wakes varies
# several-fold between crowds (rolling potatoes), so one scene's figure says little
AWAKE_STEPS = 1000
STEP_PARTS = (  # where an all-awake physics step's time goes, from MuJoCo's own stage timers
    ("collision", (mujoco.mjtTimer.mjTIMER_POS_COLLISION,)),
    ("constraint rows", (mujoco.mjtTimer.mjTIMER_POS_MAKE, mujoco.mjtTimer.mjTIMER_POS_PROJECT)),
    ("solver", (mujoco.mjtTimer.mjTIMER_CONSTRAINT,)),  # noslip included
)
PASSES = 3  # the primitive and all-awake measurements are repeated: this machine's speed varies by a
# third from one minute to the next, and the median pass says more than any single one


@dataclass
class Timing:
    """Wall-clock and CPU seconds of the same work; on a shared machine wall exceeds CPU."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)

    def scaled(self, factor: float) -> Timing:
        return Timing(self.wall * factor, self.cpu * factor)


@dataclass
class SpeedFigures:
    """Speed of one recipe's cell on this machine (each figure as wall and CPU time)."""

    steps: int = 0  # physics steps taken while primitives ran in the 30-object scenes (sleeping on)
    steps_time: Timing = field(default_factory=Timing)
    awake_tree_steps: int = 0  # physics steps times the kinematic trees awake at each (objects and gripper)
    trees: int = 0  # kinematic trees of the 30-object scene: every object and the gripper
    awake_steps: int = 0  # physics steps with all 30 objects awake (sleeping off): the worst case
    awake_time: Timing = field(default_factory=Timing)
    awake_parts: dict[str, float] = field(default_factory=dict)  # share of the all-awake step per stage
    simulated_s: float = 0.0  # physics seconds simulated while primitives ran
    grasp: Timing = field(default_factory=Timing)  # per grasp primitive
    push: Timing = field(default_factory=Timing)  # per push primitive
    frame_first: Timing = field(default_factory=Timing)  # a fresh scene's first frame (all cast)
    frame: Timing = field(default_factory=Timing)  # a frame after a primitive (what moved is recast)
    first_reset: Timing = field(default_factory=Timing)  # a new SimCell's first reset, background included
    reset: dict[str, Timing] = field(default_factory=dict)  # per scenario, mean over seeds
    reset_worst: dict[str, Timing] = field(default_factory=dict)  # per scenario, the slowest seed
    reset_seeds: int = 0
    pass_rates: list[float] = field(default_factory=list)  # as-run steps/s (wall) per pass, fastest first


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


def _timed(fn: Callable[[], object]) -> tuple[object, Timing]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def _mean(timings: list[Timing]) -> Timing:
    return sum(timings, Timing()).scaled(1.0 / max(len(timings), 1))


def measure_speed(recipe: Recipe, resets: int = 3, primitives: int = 2, passes: int = PASSES) -> SpeedFigures:
    """Speed of the cell on this machine: physics, primitives (``primitives`` grasps and as many pushes
    in each of the ``SPEED_SEEDS`` crowds), frames, and scene resets over the first ``resets`` odd seeds
    of every scenario (mean and slowest: the heap builders' times vary per seed).

    The primitives run ``passes`` times, the same seeded work each time, and their figures are the
    median pass's (every pass's steps/s is kept); the all-awake steps are the median of as many runs."""
    passes = max(1, passes)
    cell = SimCell(recipe)
    _, first_reset = _timed(lambda: cell.reset(SPEED_SCENARIO, SPEED_SEEDS[0]))
    frame_first = _timed(cell.camera.read)[1]
    by_time = sorted((_primitive_pass(cell, primitives) for _ in range(passes)),
                     key=lambda p: p.steps_time.wall)
    f = by_time[len(by_time) // 2]
    f.pass_rates = [p.steps / max(p.steps_time.wall, 1e-9) for p in by_time]
    f.first_reset, f.frame_first = first_reset, frame_first
    cell.reset(SPEED_SCENARIO, SPEED_SEEDS[0])
    f.awake_steps = AWAKE_STEPS
    f.awake_time, f.awake_parts = sorted((_awake_steps(cell, AWAKE_STEPS) for _ in range(passes)),
                                         key=lambda r: r[0].wall)[passes // 2]
    for name in SCENARIOS:
        if name in recipe.sim.scenarios:
            runs = [_timed(lambda n=name, s=seed: cell.reset(n, s))[1] for seed in range(1, 2 * resets, 2)]
            f.reset[name] = _mean(runs)
            f.reset_worst[name] = max(runs, key=lambda t: t.wall)
    f.reset_seeds = resets
    return f


def _primitive_pass(cell: SimCell, primitives: int) -> SpeedFigures:
    """One pass of the primitives over the ``SPEED_SEEDS`` crowds: their steps, times and frames."""
    f = SpeedFigures()
    grasps, pushes, frames = [], [], []
    for seed in SPEED_SEEDS:
        cell.reset(SPEED_SCENARIO, seed)
        _primitive_speed(cell, primitives, seed, f, (grasps, pushes, frames))
    f.grasp, f.push, f.frame = _mean(grasps), _mean(pushes), _mean(frames)
    return f


def _primitive_speed(cell: SimCell, count: int, seed: int, f: SpeedFigures,
                     timings: tuple[list[Timing], list[Timing], list[Timing]]) -> None:
    """Alternate ``count`` grasps and pushes on random objects of the scene, timing each and the frame
    after; adds the physics steps and their time to ``f`` and the timings to (grasps, pushes, frames)."""
    steps = [0, 0]  # physics steps, and steps times the trees awake at each
    data = cell.scene.data

    def tally(n: int) -> None:
        steps[0] += n
        steps[1] += n * int(data.ntree_awake)

    cell.rig.on_step = tally
    rng = np.random.default_rng(seed)
    grasps, pushes, frames = timings
    for k in range(2 * count):
        targets = [s for s in cell.truth.objects() if s.in_workspace]
        if not targets:
            break
        target = targets[int(rng.integers(len(targets)))]
        direction = rng.uniform(0, 2 * math.pi)
        action = grasp_action(cell, target.id) if k % 2 == 0 else push_action(cell, target.id, direction)
        start = cell.scene.data.time
        _, took = _timed(lambda a=action: cell.robot.execute(a))
        (grasps if k % 2 == 0 else pushes).append(took)
        f.simulated_s += cell.scene.data.time - start
        f.steps_time = f.steps_time + took
        frames.append(_timed(cell.camera.read)[1])
    f.steps += steps[0]
    f.awake_tree_steps += steps[1]
    f.trees = int(cell.scene.model.ntree)
    cell.rig.on_step = None


def _awake_steps(cell: SimCell, steps: int) -> tuple[Timing, dict[str, float]]:
    """Time of ``steps`` physics steps with sleeping off, and each ``STEP_PARTS`` stage's share of it."""
    m, d = cell.scene.model, cell.scene.data
    before = _stage_seconds(d)
    m.opt.enableflags &= ~int(mujoco.mjtEnableBit.mjENBL_SLEEP)
    try:
        took = _timed(lambda: mujoco.mj_step(m, d, steps))[1]
    finally:
        m.opt.enableflags |= int(mujoco.mjtEnableBit.mjENBL_SLEEP)
    spent = {k: v - before[k] for k, v in _stage_seconds(d).items()}
    step = spent.pop("step")
    return took, ({k: v / step for k, v in spent.items()} if step > 0 else {})


def _stage_seconds(d: mujoco.MjData) -> dict[str, float]:
    """Cumulative seconds of a whole step and of each ``STEP_PARTS`` stage, from MuJoCo's timers."""
    out = {"step": d.timer[int(mujoco.mjtTimer.mjTIMER_STEP)].duration}
    for name, timers in STEP_PARTS:
        out[name] = sum(d.timer[int(t)].duration for t in timers)
    return out


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
    """Printable lines of the speed figures with their targets (wall and CPU time of this process)."""
    def rate(n: int, t: Timing) -> tuple[str, str]:
        return f"{n / max(t.wall, 1e-9):,.0f}", f"{n / max(t.cpu, 1e-9):,.0f}"

    passes = len(f.pass_rates)
    rows = [
        (f"physics steps/s, 30 objects, as run ({len(SPEED_SEEDS)} crowds)", *rate(f.steps, f.steps_time),
         ">= 10,000" + (f" (median of {passes} passes)" if passes > 1 else "")),
        ("physics steps/s as run, every pass (wall)", "", "",
         " / ".join(f"{r / 1e3:.1f}k" for r in f.pass_rates) + " (fastest first)"),
        ("physics steps/s, 30 objects all awake", *rate(f.awake_steps, f.awake_time), "(worst case)"),
        ("all-awake step, share of its time", "", "",
         ", ".join(f"{k} {100 * v:.0f} %" for k, v in f.awake_parts.items()) or "(no stage timers)"),
        (f"bodies awake in primitives, mean of {f.trees}", f"{f.awake_tree_steps / max(f.steps, 1):.1f}", "",
         "(settled objects sleep)"),
        ("simulated s per second in primitives", *(f"{f.simulated_s / max(t, 1e-9):.1f}"
                                                  for t in (f.steps_time.wall, f.steps_time.cpu)), ""),
        ("s per grasp primitive", f"{f.grasp.wall:.3f}", f"{f.grasp.cpu:.3f}", "<= 0.3"),
        ("s per push primitive", f"{f.push.wall:.3f}", f"{f.push.cpu:.3f}", "<= 0.3"),
        ("ms per 640x480 frame after a primitive", f"{1e3 * f.frame.wall:.1f}", f"{1e3 * f.frame.cpu:.1f}",
         "<= 60"),
        ("ms per frame of a fresh scene", f"{1e3 * f.frame_first.wall:.1f}", f"{1e3 * f.frame_first.cpu:.1f}",
         "<= 60"),
        ("s for a new cell's first reset", f"{f.first_reset.wall:.3f}", f"{f.first_reset.cpu:.3f}", ""),
    ]
    rows += [(f"s per reset, scenario {k}", f"{v.wall:.3f}", f"{v.cpu:.3f}", "<= 0.5")
             for k, v in f.reset.items()]
    rows += [(f"s slowest of {f.reset_seeds} resets, {k}", f"{v.wall:.3f}", f"{v.cpu:.3f}", "")
             for k, v in f.reset_worst.items()]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    head = f"  {'':<47s} {'wall':>10s} {'cpu':>10s}  target"
    return ([f"speed ({name}; {os.cpu_count()} cores, load average {load:.1f})", head]
            + [f"  {a:<47s} {b:>10s} {c:>10s}  {d}" for a, b, c, d in rows])


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
