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
    leads,
    leads_table,
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


def test_per_completion_figures_are_means_over_the_runs_that_binned_every_impurity():
    """Paper 2's protocol: each completed run scores itself, the run left unfinished counts nowhere."""
    r = summarize([_ep(2, 2, 2, 2), _ep(1, 30, 10, 1), _ep(2, 4, 3, 2)])
    assert r.grasp_success_per_completion == pytest.approx((1 + 2 / 3) / 2)
    assert r.action_efficiency_per_completion == pytest.approx((1 + 2 / 4) / 2)
    none = summarize([_ep(1, 30, 10, 1)])
    assert (none.grasp_success_per_completion, none.action_efficiency_per_completion) == (0.0, 0.0)


def test_the_per_completion_table_prints_paper_2s_figures():
    results = [summarize([_ep(2, 2, 2, 2), _ep(1, 30, 10, 1), _ep(2, 4, 4, 2)])]
    assert markdown_table(results).splitlines()[2] == "| ours | 0.312 | 0.139 |"
    assert markdown_table(results, "per completion").splitlines()[2] == "| ours | 0.750 | 0.750 |"
    with pytest.raises(ValueError, match="unknown figures"):
        markdown_table(results, "median")


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


def test_a_product_recipe_is_benchmarked_on_the_model_it_points_to():
    """``ours`` and ``no-oi`` load the recipe's ``policy.model`` (the products' model for potatoes), not
    the toy-blocks file in ``models/``; an explicit ``ours_model`` still wins."""
    import hashlib

    potatoes = load_recipe("recipes/potatoes-clods.yaml")
    products = Path("models/tcdd-ours-products.safetensors")
    toy = Path("models/tcdd-ours.safetensors")
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (products, toy)}
    assert digest[products] != digest[toy]
    assert contender("ours", potatoes, Path("models")).policy.sha256 == digest[products]
    assert contender("no-oi", potatoes, Path("models")).policy.sha256 == digest[products]
    assert contender("ours", potatoes, Path("models"), toy).policy.sha256 == digest[toy]
    assert contender("ours", RECIPE, Path("models")).policy.sha256 == digest[toy]


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


def _runs(method, case, per_seed):
    """Episodes on seeds 1, 3, ...: ``per_seed`` holds (picked, actions, grasps, hits) per run."""
    return [EpisodeResult(method, case, 2 * k + 1, 1, p, a, g, h, "x")
            for k, (p, a, g, h) in enumerate(per_seed)]


def test_a_lead_is_the_paired_difference_of_the_pooled_figures_with_its_interval():
    ours = _runs("ours", "invisible", [(1, 2, 1, 1)] * 10)
    rival = _runs("no-t", "invisible", [(1, 4, 2, 1)] * 10)
    (lead,) = leads(ours + rival)
    assert (lead.rival, lead.case, lead.runs) == ("no-t", "invisible", 10)
    assert lead.grasp_success == pytest.approx(0.5) and lead.action_efficiency == pytest.approx(0.25)
    assert lead.grasp_success_interval == pytest.approx((0.5, 0.5))  # every seed alike: no spread
    assert lead.verdict == "ahead"
    (back,) = leads(ours + rival, method="no-t")
    assert back.grasp_success == pytest.approx(-0.5) and back.verdict == "behind"
    (same,) = leads(ours + _runs("no-oi", "invisible", [(1, 2, 1, 1)] * 10))
    assert same.grasp_success_interval == (0.0, 0.0) and same.verdict == "not separated"


def test_a_lead_won_on_half_the_seeds_and_lost_on_the_others_is_not_separated():
    ours = _runs("ours", "random", [(1, 1, 1, 1), (0, 6, 3, 0)] * 10)
    rival = _runs("heuristic", "random", [(0, 6, 3, 0), (1, 1, 1, 1)] * 10)
    (lead,) = leads(ours + rival)
    assert lead.grasp_success == pytest.approx(0.0)
    lo, hi = lead.grasp_success_interval
    assert lo < -0.1 and hi > 0.1  # measured: -0.40 to +0.40 for these 20 runs
    assert lead.verdict == "not separated"
    assert leads(ours + rival) == leads(ours + rival)  # the bootstrap is seeded: same runs, same intervals


def test_per_completion_leads_leave_out_unfinished_runs_that_pooled_leads_count():
    """A rival that finishes half its runs in one sure grasp and wastes the others' whole budget: pooled, ours
    (every run finished in two actions, one missed grasp each) is ahead on efficiency and behind on grasps;
    per completion the rival's unfinished runs do not count and ours is behind on both."""
    ours = _runs("ours", "invisible", [(1, 2, 2, 1)] * 10)
    rival = _runs("no-oi", "invisible", [(1, 1, 1, 1), (0, 30, 0, 0)] * 5)
    (pooled,) = leads(ours + rival)
    assert pooled.grasp_success == pytest.approx(-0.5) and pooled.action_efficiency == pytest.approx(
        0.5 - 5 / 155)
    (paper,) = leads(ours + rival, figures="per completion")
    assert paper.figures == "per completion" and paper.verdict == "behind"
    assert paper.grasp_success == pytest.approx(-0.5) and paper.action_efficiency == pytest.approx(-0.5)


def test_leads_refuse_runs_on_different_seeds():
    ours = _runs("ours", "random", [(1, 1, 1, 1)] * 3)
    stray = EpisodeResult("vpg", "random", 99, 1, 1, 1, 1, 1, "x")
    rival = _runs("vpg", "random", [(1, 1, 1, 1)] * 2) + [stray]
    with pytest.raises(ValueError, match="ours and vpg ran different seeds on the random case"):
        leads(ours + rival)


def test_leads_table_and_json_carry_every_rival_and_the_verdict():
    eps = (_runs("ours", "random", [(1, 2, 1, 1)] * 4) + _runs("vpg", "random", [(0, 3, 3, 0)] * 4)
           + _runs("heuristic", "random", [(1, 2, 1, 1)] * 4))
    found = leads(eps)
    table = leads_table(found).splitlines()
    assert [line.split("|")[1].strip() for line in table[2:]] == ["vpg", "heuristic"]
    assert table[2].endswith("| ahead |") and table[3].endswith("| not separated |")
    doc = json.loads(results_json([summarize(eps[:4])], eps, {}, found))
    verdicts = [(d["rival"], d["verdict"]) for d in doc["leads"]]
    assert verdicts == [("vpg", "ahead"), ("heuristic", "not separated")]
    assert doc["leads"][0]["grasp_success"] == pytest.approx(1.0)


def test_bench_impurity_command_prints_the_leads_of_ours(tmp_path, capsys):
    from sorter.cli import main

    out = tmp_path / "bench.json"
    code = main(["bench", "impurity", "--recipe", "recipes/toy-blocks.yaml", "--methods", "ours,heuristic",
                 "--runs", "1", "--cases", "random", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| ours |" in printed and "`ours` against each method" in printed
    assert "| heuristic | random |" in printed and "Paper 2's protocol (means per completion" in printed
    doc = json.loads(out.read_text())
    assert [(d["rival"], d["figures"]) for d in doc["leads"]] == [("heuristic", "pooled"),
                                                                 ("heuristic", "per completion")]
    assert doc["leads"][0]["runs"] == 1 and "grasp_success_per_completion" in doc["results"][0]


def test_a_card_rewrite_keeps_other_recipes_and_hand_written_facts(tmp_path):
    from sorter.bench import write_card

    card = tmp_path / "card.md"
    model = Path("models/tcdd-ours.safetensors")
    write_card(card, model, "toy-blocks", "| toy table |", "sorter bench impurity --recipe toy")
    text = card.read_text().replace("- Seed:", "- Lineage: fine-tuned from another model\n- Seed:")
    card.write_text(text)
    write_card(card, model, "coal-slate", "| coal table |", "sorter bench impurity --recipe coal")
    write_card(card, model, "toy-blocks", "| new toy table |", "sorter bench impurity --recipe toy")
    text = card.read_text()
    assert text.count("- Lineage: fine-tuned from another model") == 1 and text.count("- sha256:") == 1
    assert "| new toy table |" in text and "| toy table |" not in text and "| coal table |" in text
    assert text.index("## Benchmark: toy-blocks") < text.index("## Benchmark: coal-slate")
