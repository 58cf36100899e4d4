"""The shipped models on seeded simulated scenes: they isolate and pick the impurity.

Thresholds are what the model measured on these even (training-side) seeds with a margin: every
challenging impurity binned within 3 actions (one singulating push and a grasp, at most one retry), a
half-covered invisible impurity uncovered and binned within 4, a hidden one first showing as a sliver
binned with one clean grasp within 4 (with the sliver area set), and a random scene cleared with one
grasp per impurity. The products' model: challenging potato scenes whose first grasp shoves a potato
aside bin the clod in that one grasp, and an invisible one searched under a smaller cluster bins its
clod instead of ending declared clean, and one whose best push only rocks a potato bins its clod instead
of repeating that push until the batch is declared clean; a clod pushed half under a potato is sighted
by the recipe's taught appearance guard instead of left in a batch declared clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sorter.bench import contender, run_episode
from sorter.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPE = load_recipe(REPO / "recipes" / "toy-blocks.yaml")


@pytest.fixture(scope="module")
def setup():
    from sorter.cell.sim.cell import SimCell
    from sorter.perception.attention import load_attender

    ours = contender("ours", RECIPE, REPO / "models")
    return SimCell(RECIPE), load_attender(RECIPE), ours


def test_the_recipe_runs_the_shipped_model(setup):
    assert RECIPE.policy.kind == "tcdd"
    assert setup[2].policy.method.name == "ours"


@pytest.mark.parametrize("seed", [2, 4, 6, 8, 10, 12])
def test_a_tightly_packed_impurity_is_pushed_free_and_picked(setup, seed):
    cell, attender, ours = setup
    e = run_episode(cell, attender, ours, "challenging", seed, budget=3)
    assert e.picked == e.impurities == 1, e
    assert e.grasps <= 2


def test_random_scenes_are_cleared_with_one_grasp_per_impurity(setup):
    cell, attender, ours = setup
    episodes = [run_episode(cell, attender, ours, "random", s, budget=10) for s in (2, 4, 6)]
    assert all(e.picked == e.impurities for e in episodes), episodes
    assert sum(e.actions for e in episodes) == sum(e.impurities for e in episodes)


@pytest.mark.parametrize("seed", [4, 32, 66])
def test_a_half_covered_impurity_is_uncovered_by_pushing_its_cover(setup, seed):
    """Invisible scenes where the first push reveals the block half under an item. Pushing the cover
    first bins it in 3 actions on each seed; spreading its other neighbours instead took 6 to 10."""
    cell, attender, ours = setup
    e = run_episode(cell, attender, ours, "invisible", seed, budget=4)
    assert e.picked == e.impurities == 1, e


@pytest.mark.parametrize("seed", [24, 98])
def test_a_sliver_of_a_hidden_impurity_is_pushed_free_before_the_grasp(setup, seed):
    """Invisible scenes where the block first shows as a sliver still under an item. Grasping the sliver
    (before ``policy.grasp_min_area``) took two grasps on each seed, and one of them carried a product
    item into the reject bin; pushing first bins the block with one clean grasp within 4 actions. The
    shipped recipe leaves the area off (it cost efficiency on the benchmark, README); set it here."""
    cell, attender, ours = setup
    ours.policy.grasp_min_area = 2.6e-4  # m^2, 65 cells: the area measured on toy-blocks
    try:
        e = run_episode(cell, attender, ours, "invisible", seed, budget=5)
    finally:
        ours.policy.grasp_min_area = RECIPE.policy.grasp_min_area
    assert e.picked == e.impurities == 1, e
    assert e.grasps == 1 and e.false_picks == 0, e


@pytest.fixture(scope="module")
def potatoes():
    from sorter.cell.sim.cell import SimCell
    from sorter.perception.attention import load_attender

    recipe = load_recipe(REPO / "recipes" / "potatoes-clods.yaml")
    return SimCell(recipe), load_attender(recipe), contender("ours", recipe, REPO / "models")


@pytest.mark.parametrize("seed", [10, 26, 40])
def test_a_potato_beside_the_clod_is_shoved_aside_by_the_closing_jaws(potatoes, seed):
    """Challenging potato scenes where a potato stands taller than the clod between the open jaws, its
    centre off the jaw line. The recipe's ``policy.shove_aside`` lets the first grasp go: it bins the
    clod and no potato. The strict cover test refuses every such grasp and pushes first."""
    cell, attender, ours = potatoes
    e = run_episode(cell, attender, ours, "challenging", seed, budget=3)
    assert e.picked == e.impurities == 1 and e.actions == e.grasps == 1 and e.false_picks == 0, e
    shove, ours.policy.shove_aside = ours.policy.shove_aside, None
    try:
        strict = run_episode(cell, attender, ours, "challenging", seed, budget=1)
    finally:
        ours.policy.shove_aside = shove
    assert strict.grasps == 0, strict


def test_a_clod_under_a_smaller_cluster_is_searched_out_not_left_in_a_batch_declared_clean(potatoes):
    """An invisible potato heap (training seed 22) whose first two pushes leave the clod partly under a
    potato, in a 67 mm high cluster beside the widest one (45 mm, too low to hide a clod), its visible
    part too little unlike the dark table for saliency (traced: feature contrast 0.028 against the 0.048
    floor). Looking under the widest cluster only
    (paper 2's rule, saliency alone) declares the batch clean with the clod in it; the recipe's
    ``occlusion.search: any`` searches on and bins it."""
    from sorter.perception.attention import Attender

    cell, attender, ours = potatoes
    assert attender.spec.occlusion.search == "any"
    e = run_episode(cell, attender, ours, "invisible", 22, budget=8)
    assert e.picked == e.impurities == 1 and e.false_picks == 0, e
    recipe = load_recipe(REPO / "recipes" / "potatoes-clods.yaml")
    widest = recipe.model_copy(update={"perception": recipe.perception.model_copy(update={
        "occlusion": recipe.perception.occlusion.model_copy(update={"search": "largest"})})})
    e = run_episode(cell, Attender(widest), ours, "invisible", 22, budget=8)
    assert e.ended == "declared clean" and e.picked == 0, e


def test_a_push_that_only_rocks_a_potato_is_not_repeated_until_the_batch_is_declared_clean(potatoes,
                                                                                        monkeypatch):
    """An invisible potato heap (training seed 24) whose best-valued push ends against a potato: it
    rocks and rolls back, changing about 300 height-map cells each time. Counted as progress (VPG's
    300-cell rule), two such pushes are tried four times each, until the heap has settled too low to hide
    anything and the batch is declared clean with the clod still 58 % hidden (traced). At the shipped
    ``STALL_CELLS`` a push that changes so little is refused, and the clod is binned within 18 actions.
    Saliency alone: the recipe's taught appearance guard finds this clod either way (10 actions)."""
    import sorter.policy.agent as agent
    from sorter.perception.attention import Attender

    cell, _, ours = potatoes
    recipe = load_recipe(REPO / "recipes" / "potatoes-clods.yaml")
    attender = Attender(recipe)  # saliency alone: no taught model loaded
    e = run_episode(cell, attender, ours, "invisible", 24, budget=18)
    assert e.picked == e.impurities == 1 and e.false_picks == 0, e
    monkeypatch.setattr(agent, "STALL_CELLS", 300)
    e = run_episode(cell, attender, ours, "invisible", 24, budget=18)
    assert e.picked == 0 and e.ended == "declared clean", e


def test_a_clod_pushed_half_under_a_potato_is_sighted_by_the_taught_look_not_left_in_the_product(potatoes):
    """A challenging potato scene (training seed 2) whose second push shoves a potato half over the clod:
    what still shows is too little unlike the dark table for saliency (traced: feature contrast 0.043
    against the 0.048 floor) and the heap is too low to hide one, so saliency alone declares the batch
    clean with the clod in it. The recipe's taught appearance guard sees the visible part as unlike
    potatoes, searches there, and the clod is binned with the next grasp."""
    from sorter.perception.attention import Attender

    cell, attender, ours = potatoes
    assert attender.appearance is not None
    e = run_episode(cell, attender, ours, "challenging", 2, budget=6)
    assert e.picked == e.impurities == 1 and e.false_picks == 0, e
    alone = run_episode(cell, Attender(load_recipe(REPO / "recipes" / "potatoes-clods.yaml")), ours,
                        "challenging", 2, budget=6)
    assert alone.picked == 0 and alone.ended == "declared clean", alone


@pytest.fixture(scope="module")
def mushrooms():
    from sorter.cell.sim.cell import SimCell
    from sorter.perception.attention import load_attender

    recipe = load_recipe(REPO / "recipes" / "mushrooms-stones.yaml")
    return recipe, SimCell(recipe), load_attender(recipe), contender("ours", recipe, REPO / "models")


@pytest.mark.parametrize("seed", [114, 140])
def test_a_stone_in_the_open_under_the_feature_floor_is_confirmed_by_the_taught_look_and_binned(mushrooms,
                                                                                                 seed):
    """Random mushroom scenes (training seeds) whose second stone, in view once the first is binned,
    steps too little from the pale caps for the recipe's feature-contrast floor: saliency alone leaves
    it in a batch declared clean, and the guard without ``confirm`` only searches around it. The taught
    look confirms the salient region, and both stones are binned in two grasps."""
    from sorter.perception.attention import Attender

    recipe, cell, attender, ours = mushrooms
    assert recipe.perception.appearance.confirm and attender.appearance is not None
    e = run_episode(cell, attender, ours, "random", seed, budget=4)
    assert e.picked == e.impurities == 2 and e.grasps == 2 and e.false_picks == 0, e
    alone = run_episode(cell, Attender(recipe), ours, "random", seed, budget=4)
    assert alone.picked == 1 and alone.ended == "declared clean", alone
    spec = recipe.perception.appearance.model_copy(update={"confirm": False})
    unconfirmed = recipe.model_copy(update={"perception": recipe.perception.model_copy(
        update={"appearance": spec})})
    searched = run_episode(cell, Attender(unconfirmed, attender.appearance), ours, "random", seed, budget=4)
    assert searched.picked == 1, searched
