"""Builds a GUI run from the library's parts: the recipe's cell, attention, policy, run log and pick loop.

Runs in the session's worker thread (opening a MuJoCo scene or loading a model takes a moment), so the
heavy imports stay here and out of the GUI's start-up.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from sorter.errors import SorterError
from sorter.recipe import Recipe, RecipeError, parse_recipe
from ui.overlays import ViewGeometry
from ui.session import Prepared, RunRequest
from ui.yaml_edit import set_value

SIM_KINDS = (("camera", "kind"), ("robot", "kind"), ("gripper", "kind"))


def preload(learned: bool = False) -> None:
    """Import and warm up what a run needs (simulated cell, perception, loop, policy) ahead of time.

    Loading a compiled extension holds the interpreter lock for up to a few hundred milliseconds; done
    lazily in the middle of a run it would freeze the GUI thread for that long. Idempotent and cheap once
    done. ``learned`` also loads the learned agent (torch).
    """
    from sklearn.cluster import DBSCAN

    import sorter.cell.factory
    import sorter.cell.sim.cell
    import sorter.loop
    import sorter.perception.attention
    import sorter.perception.heightmap
    import sorter.policy.heuristic
    import sorter.runlog  # noqa: F401

    DBSCAN(eps=1.5, min_samples=2).fit(np.arange(20, dtype=np.float64).reshape(10, 2))
    if learned:
        import sorter.policy.agent  # noqa: F401


def build_run(request: RunRequest) -> Prepared:
    """Open the cell, build the loop; everything opened is closed again if a later step fails."""
    from sorter.cell.factory import open_cell
    from sorter.loop import PickLoop
    from sorter.perception.attention import load_attender
    from sorter.policy.registry import make_policy, model_sha256
    from sorter.runlog import RunLog

    recipe = request.recipe
    if request.simulated and not recipe.is_simulated:
        raise SorterError("this recipe names hardware; rehearse it with simulated_recipe(text) first")
    seed = request.options.seed
    if seed is None:
        raise SorterError("a run needs a seed (LoopOptions.seed) so it can be replayed")
    policy = make_policy(recipe)
    attender = load_attender(recipe)
    options = dataclasses.replace(request.options, model_sha256=model_sha256(recipe))
    runlog = RunLog(request.db_path)
    try:
        cell = open_cell(recipe, seed=seed)
    except BaseException:
        runlog.close()
        raise
    try:
        loop = PickLoop(recipe, cell, policy, attender, runlog, np.random.default_rng(seed),
                        request.limits, options)
        view = ViewGeometry.camera(recipe.workspace.grid(), cell.camera_pose, cell.camera.intrinsics)
    except BaseException:
        cell.close()
        runlog.close()
        raise

    def close() -> None:
        try:
            cell.close()
        finally:
            runlog.close()

    return Prepared(loop, cell, close, view)


def recipe_from_text(text: str, path: Path | None) -> Recipe:
    """Parse recipe text as if it were the file at ``path`` (so relative model paths resolve there)."""
    return parse_recipe(text, path.name if path else "<new recipe>", path=path)


def simulated_recipe(text: str, path: Path | None) -> Recipe:
    """The recipe in ``text`` with its camera, robot and gripper switched to the simulated cell.

    Raises RecipeError when the switched recipe is incomplete for simulation (a hardware recipe with no
    camera pose, for example), naming what to add.
    """
    for field_path in SIM_KINDS:
        text = set_value(text, field_path, "sim")
    try:
        return recipe_from_text(text, path)
    except RecipeError as exc:
        raise RecipeError([dataclasses.replace(i, message=i.message + " (needed to rehearse in simulation)")
                           for i in exc.issues]) from None
