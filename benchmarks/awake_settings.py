"""All-awake physics rate of a 30-object crowd under the shipped solver settings and looser ones.

Issue #2 asks for 10,000 physics steps/s with 30 objects. `sorter bench sim` measures the cell as it runs
(settled objects sleep) and the worst case with sleeping off. This script asks how far the worst case can
go by trading physics fidelity: each row switches solver options of the shipped model (no-slip passes,
tolerances, integrator, friction cone, iterations) and prints the best of three 500-step passes from the
same settled crowd; the last rows keep the shipped settings and give MuJoCo a thread pool (``mju_threadpool``,
which spreads collision detection and the islands' constraint solving over worker threads). Nothing here
changes the shipped settings.

    python benchmarks/awake_settings.py recipes/toy-blocks.yaml [--steps 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import mujoco

from sorter.cell.sim.cell import SimCell
from sorter.recipe import load_recipe

EULER, PYRAMIDAL = int(mujoco.mjtIntegrator.mjINT_EULER), int(mujoco.mjtCone.mjCONE_PYRAMIDAL)
LOOSE = {"noslip_iterations": 0, "tolerance": 1e-4, "ccd_tolerance": 1e-4, "integrator": EULER,
         "iterations": 10}
SETTINGS: list[tuple[str, dict[str, float]]] = [
    ("shipped", {}),
    ("no-slip passes off", {"noslip_iterations": 0}),
    ("no-slip off, solver tolerance 1e-5", {"noslip_iterations": 0, "tolerance": 1e-5}),
    ("pyramidal friction cones", {"cone": PYRAMIDAL}),
    ("convex-collision tolerance 1e-4", {"ccd_tolerance": 1e-4}),
    ("all loose: no-slip off, tolerances 1e-4, Euler, 10 iterations", LOOSE),
    ("all loose and pyramidal cones", {**LOOSE, "cone": PYRAMIDAL}),
]


THREADS = (1, 2)  # worker threads of the pool rows


def steps_per_second(model: mujoco.MjModel, data: mujoco.MjData, steps: int, passes: int = 3,
                     threads: int = 0) -> tuple[float, int, int]:
    """Best rate of ``passes`` runs of ``steps`` steps, each from a copy of ``data`` (with a pool of
    ``threads`` workers when positive); contacts and constraint rows at the end of the last."""
    best, run = 0.0, data
    for _ in range(passes):
        run = copy.copy(data)
        if threads > 0:
            mujoco.mju_threadpool(run, threads)
        start = time.perf_counter()
        for _ in range(steps):
            mujoco.mj_step(model, run)
        best = max(best, steps / (time.perf_counter() - start))
    return best, int(run.ncon), int(run.nefc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cell = SimCell(load_recipe(args.recipe))
    cell.reset("30", args.seed)
    model, data = cell.scene.model, cell.scene.data
    model.opt.enableflags &= ~int(mujoco.mjtEnableBit.mjENBL_SLEEP)
    print(f"{args.recipe.stem}: 30-object crowd '30', seed {args.seed}, sleeping off, "
          f"{model.nv} degrees of freedom; best of 3 x {args.steps} steps")
    print(f"  {'settings':64s} {'steps/s':>8s} {'contacts':>9s} {'rows':>6s}")
    for name, options in SETTINGS:
        saved = {key: getattr(model.opt, key) for key in options}
        for key, value in options.items():
            setattr(model.opt, key, value)
        rate, contacts, rows = steps_per_second(model, data, args.steps)
        for key, value in saved.items():
            setattr(model.opt, key, value)
        print(f"  {name:64s} {rate:8,.0f} {contacts:9d} {rows:6d}")
    for threads in THREADS:
        rate, contacts, rows = steps_per_second(model, data, args.steps, threads=threads)
        name = f"shipped, thread pool of {threads} worker{'s' if threads > 1 else ''}"
        print(f"  {name:64s} {rate:8,.0f} {contacts:9d} {rows:6d}")


if __name__ == "__main__":
    main()
