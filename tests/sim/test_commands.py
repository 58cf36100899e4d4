"""`sorter sim snapshot`, `sorter sim demo` and `sorter bench sim` through the CLI entry point."""

from __future__ import annotations

import numpy as np
import pytest

from sorter.cli import main
from tests.conftest import RECIPES


def test_snapshot_writes_images_and_masks(tmp_path, capsys):
    import cv2

    recipe = next(p for p in RECIPES if p.stem == "toy-blocks")
    assert main(["sim", "snapshot", "--recipe", str(recipe), "--scenario", "random", "--seed", "1",
                 "--out", str(tmp_path)]) == 0
    assert cv2.imread(str(tmp_path / "color.png")).shape == (480, 640, 3)
    depth = np.load(tmp_path / "depth.npy")
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    assert cv2.imread(str(tmp_path / "depth.png")).shape == (480, 640, 3)
    ids = cv2.imread(str(tmp_path / "visible_mask.png"), cv2.IMREAD_UNCHANGED)
    amodal = sorted(tmp_path.glob("amodal_mask_*.png"))
    assert len(amodal) == 2 and ids.dtype == np.uint16
    for path in amodal:
        oid = int(path.stem.rsplit("_", 1)[1])
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) > 0
        assert mask[ids == oid].all()
    assert "random seed 1" in capsys.readouterr().out


def test_snapshot_of_an_unknown_scenario_fails_with_a_message(tmp_path, capsys):
    recipe = next(p for p in RECIPES if p.stem == "toy-blocks")
    args = ["sim", "snapshot", "--recipe", str(recipe), "--scenario", "nope", "--out", str(tmp_path)]
    assert main(args) == 1
    assert "unknown scenario 'nope'" in capsys.readouterr().err


def test_demo_grasps_the_visible_impurities(capsys):
    recipe = next(p for p in RECIPES if p.stem == "toy-blocks")
    assert main(["sim", "demo", "--recipe", str(recipe), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("delivered=True") >= 1
    assert "impurities left in the workspace: 0" in out


def test_bench_sim_prints_mean_and_slowest_reset_per_scenario(capsys):
    import re

    recipe = next(p for p in RECIPES if p.stem == "toy-blocks")
    args = ["--skip-trust", "--resets", "2", "--passes", "2"]
    assert main(["bench", "sim", "--recipe", str(recipe), *args]) == 0
    out = capsys.readouterr().out
    passes = re.search(r"every pass \(wall\)\s+([\d.]+)k / ([\d.]+)k \(fastest first\)", out)
    assert passes and float(passes.group(1)) >= float(passes.group(2))
    for name in ("random", "challenging", "invisible", "15", "30", "30-hard", "clean"):
        mean = re.search(rf"s per reset, scenario {name}\s+([\d.]+)", out)
        slowest = re.search(rf"s slowest of 2 resets, {name}\s+([\d.]+)", out)
        assert mean and slowest, name
        assert float(slowest.group(1)) >= float(mean.group(1))
    awake = re.search(r"bodies awake in primitives, mean of (\d+)\s+([\d.]+)", out)
    assert awake, "the awake-bodies row explains the as-run steps/s"
    assert 1.0 <= float(awake.group(2)) < int(awake.group(1)) == 31  # the gripper and some objects, not all
    shares = re.search(r"all-awake step, share of its time\s+collision (\d+) %, constraint rows (\d+) %, "
                       r"solver (\d+) %", out)
    assert shares, "the all-awake row says where a step's time goes"
    parts = [int(v) for v in shares.groups()]
    assert all(v >= 1 for v in parts) and sum(parts) <= 101  # stages within one step (rounded)


def test_bench_sim_passes_repeat_the_same_work():
    """The median pass is only a fair figure if every pass did the same steps (seeded primitives)."""
    from sorter.cell.sim.bench import _primitive_pass
    from sorter.cell.sim.cell import SimCell
    from sorter.recipe import load_recipe

    cell = SimCell(load_recipe(next(p for p in RECIPES if p.stem == "toy-blocks")))
    first, second = _primitive_pass(cell, 1), _primitive_pass(cell, 1)
    assert first.steps > 0
    assert (first.steps, first.awake_tree_steps) == (second.steps, second.awake_tree_steps)
    assert first.simulated_s == pytest.approx(second.simulated_s)
