"""Perception on seeded scenes of the simulated cell, checked against its ground truth.

Thresholds were measured on these seeds (evaluation seeds, odd); ``sorter eval perception`` gives the
figures over many scenes.
"""

import numpy as np
import pytest

from sorter.perception.appearance import AppearanceModel
from sorter.perception.attention import Attender
from sorter.perception.evaluate import capture_scenes, region_on, score_scene
from tests.conftest import RECIPE_IDS as NAMES


@pytest.fixture(scope="module")
def scenes(recipes) -> dict:
    """(recipe, scenario) -> captures of seeds 1 and 3."""
    out = {}
    for name, recipe in recipes.items():
        for scenario in ("random", "challenging", "clean"):
            out[name, scenario] = capture_scenes(recipe, scenario, [1, 3])
    return out


@pytest.mark.parametrize("name", NAMES)
def test_heightmap_agrees_with_the_simulated_objects(name, recipes, scenes):
    recipe = recipes[name]
    for cap in scenes[name, "random"]:
        hm, truth = cap.heightmaps, cap.truth
        table = (truth.ids == 0) & (hm.pixel >= 0)
        assert np.percentile(hm.height[table], 99) < 0.003, "the table is flat within depth noise"
        for obj_id in truth.impurity_ids + truth.product_ids:
            cells = truth.ids == obj_id
            if cells.sum() < 20:
                continue
            heights = hm.height[cells]
            assert np.median(heights) > recipe.perception.occlusion.min_point_height
            assert heights.max() < 0.15


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scenario", ["random", "challenging"])
def test_the_target_is_a_visible_impurity(name, scenario, recipes, scenes):
    attender = Attender(recipes[name])
    for cap in scenes[name, scenario]:
        assert cap.truth.visible_impurities, "these seeds show an impurity"
        att = attender.attend(cap.heightmaps)
        assert att.mode == "target", att.reason
        assert region_on(att.target.mask, att.target.peak, np.isin(cap.truth.ids, cap.truth.impurity_ids))
        assert att.crop.contains(*att.crop_center_rc)


@pytest.mark.parametrize("name", NAMES)
def test_clean_product_is_not_an_impurity(name, recipes, scenes):
    attender = Attender(recipes[name])
    for cap in scenes[name, "clean"]:
        att = attender.attend(cap.heightmaps)
        assert att.mode in ("clean", "cluster"), att.reason
        assert not att.impurities


@pytest.mark.parametrize("name", NAMES)
def test_a_hidden_impurity_lies_in_the_cluster_crop(name, recipes):
    cap = capture_scenes(recipes[name], "invisible", [11])[0]
    assert cap.truth.hidden_xy and not cap.truth.visible_impurities
    att = Attender(recipes[name]).attend(cap.heightmaps)
    score = score_scene(att, cap.truth, cap.heightmaps)
    assert att.mode == "cluster", att.reason
    assert score.cluster_hit
    assert att.target_mask[att.crop.slices].all() and att.target_mask.sum() == att.crop.size ** 2


def test_taught_look_finds_both_impurities_among_mushrooms(recipes, scenes):
    recipe = recipes["mushrooms-stones"]
    teach = capture_scenes(recipe, "clean", list(range(0, 24, 2)))
    model = AppearanceModel().fit([c.heightmaps for c in teach], np.random.default_rng(0),
                                  recipe.perception.occlusion.min_point_height)
    attender = Attender(recipe, model)
    for cap in scenes["mushrooms-stones", "random"]:
        score = score_scene(attender.attend(cap.heightmaps), cap.truth, cap.heightmaps)
        assert score.visible == 2 and score.found == 2
    for cap in scenes["mushrooms-stones", "clean"]:
        att = attender.attend(cap.heightmaps)
        assert att.mode != "target", att.reason
        assert np.nanmax(att.novelty) < recipe.perception.appearance.threshold


def test_image_space_saliency_needs_the_frame_and_finds_the_red_block(recipes):
    from sorter.cell.sim.cell import SimCell
    from sorter.perception.evaluate import scene_truth
    from sorter.perception.heightmap import PerceptionError, compute_heightmaps

    toy = recipes["toy-blocks"]
    saliency = toy.perception.saliency.model_copy(update={"source": "image"})
    recipe = toy.model_copy(update={"perception": toy.perception.model_copy(update={"saliency": saliency})})
    cell = SimCell(toy)
    cell.reset("random", 1)
    frame = cell.camera.read()
    hm = compute_heightmaps(frame, cell.camera_pose, toy.workspace.grid())
    with pytest.raises(PerceptionError, match="pass the frame"):
        Attender(recipe).attend(hm)
    att = Attender(recipe).attend(hm, frame)
    truth = scene_truth(cell, hm)
    assert att.mode == "target"
    assert region_on(att.target.mask, att.target.peak, np.isin(truth.ids, truth.impurity_ids))
