"""The impurity benchmark: pooled figures, the table, and one real episode on the simulated cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sorter.bench import (
    Contender,
    EpisodeResult,
    buildable_seeds,
    contender,
    markdown_table,
    results_json,
    run_episode,
    summarize,
)
from sorter.errors import ModelFileError
from sorter.policy.base import Decision
from sorter.recipe import load_recipe

RECIPE = load_recipe("recipes/toy-blocks.yaml")


def _ep(picked, actions, grasps, hits, impurities=2, case="random", method="ours", false_picks=0):
    return EpisodeResult(method, case, 1, impurities, picked, actions, grasps, hits, "x", false_picks)


def test_summary_pools_attempts_and_actions_over_runs():
    r = summarize([_ep(2, 2, 2, 2), _ep(1, 30, 10, 1), _ep(2, 4, 3, 2)])
    assert r.grasp_success == pytest.approx(5 / 15)
    assert r.action_efficiency == pytest.approx(5 / 36)
    assert r.completion == pytest.approx(2 / 3)
    assert summarize([_ep(0, 0, 0, 0)]).grasp_success == 0.0
    assert summarize([_ep(2, 3, 3, 2, false_picks=1), _ep(1, 2, 2, 1, false_picks=1)]).false_picks == 2


def test_table_has_one_row_per_method_and_cases_as_columns():
    results = [summarize([_ep(2, 2, 2, 2, case=c, method=m)]) for m in ("ours", "vpg")
               for c in ("random", "invisible")]
    table = markdown_table(results).splitlines()
    assert table[0].startswith("| Method | Grasp success random | Grasp success invisible |")
    assert [line.split("|")[1].strip() for line in table[2:]] == ["ours", "vpg"]
    doc = json.loads(results_json(results, [], {"runs": 1}))
    assert {"method", "case", "grasp_success", "action_efficiency", "runs"} <= set(doc["results"][0])


def test_missing_model_names_the_file_and_the_command(tmp_path):
    with pytest.raises(ModelFileError, match="tcdd-vpg.safetensors.*sorter train --method vpg"):
        contender("s-vpg", RECIPE, tmp_path)


def test_heuristic_episode_on_the_simulated_cell():
    from sorter.cell.sim.cell import SimCell
    from sorter.perception.attention import load_attender

    cell = SimCell(RECIPE)
    seeds = buildable_seeds(cell, "random", 1, 1)
    assert seeds == [1]
    result = run_episode(cell, load_attender(RECIPE), contender("heuristic", RECIPE, Path("models")),
                         "random", 1, budget=6)
    assert result.impurities == RECIPE.sim.scenarios["random"].impurities
    assert 1 <= result.actions <= 6 and result.grasps <= result.actions
    assert result.picked >= 1 and result.grasp_hits >= 1  # measured: the heuristic clears this scene
    binned = [o for o in cell.truth.objects() if o.in_bin]
    assert result.picked + result.false_picks == len(binned)
    assert result.false_picks == sum(not o.is_impurity for o in binned)


def test_a_grasp_that_bins_a_product_item_counts_as_a_false_pick():
    """A grasp on an item instead of the impurity: the item is binned and counted, the impurity stays."""
    from sorter.cell.sim.cell import SimCell
    from sorter.cell.sim.scripted import grasp_action
    from sorter.perception.attention import load_attender

    cell = SimCell(RECIPE)
    cell.reset("random", 1)
    item = next(o for o in cell.truth.objects() if not o.is_impurity and o.in_workspace)
    wrong = grasp_action(cell, item.id)

    class GraspsTheItem:
        def decide(self, attention, heightmaps, rng):
            return Decision(wrong, 0.0, 0.0, (0, 0, 0))

    who = Contender("wrong", GraspsTheItem(), uses_attention=False, stops_when_clean=False)
    result = run_episode(cell, load_attender(RECIPE), who, "random", 1, budget=1)
    assert result.grasps == 1 and result.grasp_hits == 0 and result.picked == 0
    assert result.false_picks == 1
