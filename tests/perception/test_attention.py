"""Attention (paper 2, Algorithm 1) on synthetic heightmaps: target, cluster, clean; crops; loading."""

from dataclasses import replace

import numpy as np
import pytest

from sorter.errors import ModelFileError
from sorter.geometry import CROP_CELLS
from sorter.perception.appearance import AppearanceModel
from sorter.perception.attention import Attender, crop_around, load_attender
from sorter.perception.heightmap import Heightmaps
from sorter.perception.saliency import Region
from sorter.recipe import load_recipe
from tests.perception.synthetic import (
    GRID,
    IMPURITY_RGB,
    PRODUCT_RGB,
    heightmaps_of,
    item_grid,
)

RECIPE = load_recipe("recipes/toy-blocks.yaml")
YELLOW = (225, 200, 40)


def _box(r: int, c: int) -> tuple[slice, slice]:
    return slice(12 + r * 40, 32 + r * 40), slice(12 + c * 40, 32 + c * 40)


def _scene(seed: int, odd: dict | None = None) -> Heightmaps:
    rng = np.random.default_rng(seed)
    return heightmaps_of(item_grid(rng, odd or {}), rng, texture=6.0)


@pytest.fixture(scope="module")
def taught() -> Attender:
    model = AppearanceModel().fit([_scene(s) for s in range(0, 40, 2)], np.random.default_rng(0))
    return Attender(_variant(RECIPE, use="fuse"), model)


@pytest.mark.parametrize("seed", [1, 3, 5, 7])
def test_a_visible_impurity_becomes_the_target(seed):
    cell = (seed % 5, (seed * 3) % 5)
    att = Attender(RECIPE).attend(_scene(seed, {cell: IMPURITY_RGB}))
    assert att.mode == "target" and att.target is att.regions[0]
    rows, cols = _box(*cell)
    on_target = att.target_mask[rows, cols].sum()
    assert on_target >= 0.9 * att.target_mask.sum()
    assert att.crop.size == CROP_CELLS and att.crop.contains(*att.crop_center_rc)
    x, y = att.crop_center_xy
    r, c = GRID.cell_of(x, y)
    assert rows.start <= r < rows.stop and cols.start <= c < cols.stop
    assert set(att.timings_ms) >= {"saliency", "regions", "total"}


@pytest.mark.parametrize("seed", [1, 3, 5, 7, 9])
def test_clean_product_raises_no_target(seed):
    att = Attender(RECIPE).attend(_scene(seed))
    assert att.mode != "target"
    assert not att.impurities and att.regions, "regions are proposed but none accepted"
    assert not att.target_mask.any() or att.mode == "cluster"


def test_empty_workspace_is_clean_with_a_reason():
    att = Attender(RECIPE).attend(heightmaps_of([]))
    assert att.mode == "clean" and "nothing on the table" in att.reason
    assert att.regions == [] and att.crop is None and not att.target_mask.any()


def test_all_invalid_heightmaps_are_clean():
    n = GRID.cells
    hm = Heightmaps(np.zeros((n, n, 3), np.uint8), np.zeros((n, n), np.float32), np.zeros((n, n), bool), GRID)
    assert Attender(RECIPE).attend(hm).mode == "clean"


def test_a_heap_without_visible_impurity_gives_cluster_mode():
    # tall enough to hide one
    rect = [(60, 150, 60, 60, 0.04, PRODUCT_RGB), (75, 165, 30, 30, 0.05, PRODUCT_RGB)]
    hm = heightmaps_of(rect + [(20, 20, 20, 20, 0.03, PRODUCT_RGB)], np.random.default_rng(2), texture=4)
    att = Attender(RECIPE).attend(hm)
    assert att.mode == "cluster", att.reason
    assert att.cluster is not None and att.cluster.can_hide(RECIPE.perception.occlusion)
    assert att.target_mask.sum() == CROP_CELLS ** 2 and att.target_mask[att.crop.slices].all()
    assert att.crop.contains(90, 180)
    assert att.crop.col0 + att.crop.size == GRID.cells, "crop shifted inside at the border"


def test_a_small_stack_beside_a_wide_layer_is_looked_under_only_when_the_recipe_searches_any():
    """Paper 2 looks under the largest cluster only; ``occlusion.search: any`` also under a smaller one
    that can hide an impurity."""
    layer = [(30, 30, 90, 90, 0.03, PRODUCT_RGB)]  # 18 x 18 cm, one item high: hides nothing
    stack = [(170, 170, 24, 24, 0.03, PRODUCT_RGB), (172, 172, 20, 20, 0.055, PRODUCT_RGB)]
    hm = heightmaps_of(layer + stack, np.random.default_rng(4), texture=4)
    occ = RECIPE.perception.occlusion
    assert occ.search == "largest"
    assert Attender(RECIPE).attend(hm).mode == "clean"
    anywhere = RECIPE.model_copy(update={"perception": RECIPE.perception.model_copy(
        update={"occlusion": occ.model_copy(update={"search": "any"})})})
    att = Attender(anywhere).attend(hm)
    assert att.mode == "cluster", att.reason
    assert att.crop.contains(182, 182) and att.cluster.max_height >= 0.05


def test_crop_is_centred_and_shifted_inside_near_borders():
    c = crop_around((112.0, 112.0), 224)
    assert (c.row0, c.col0, c.size) == (56, 56, CROP_CELLS)
    corner = crop_around((3.0, 220.0), 224)
    assert (corner.row0, corner.col0) == (0, 224 - CROP_CELLS)
    assert corner.apply(np.zeros((224, 224, 3))).shape == (CROP_CELLS, CROP_CELLS, 3)


def test_taught_model_finds_every_impurity_and_keeps_clean_quiet(taught):
    att = taught.attend(_scene(11, {(1, 1): IMPURITY_RGB, (3, 4): YELLOW, (4, 0): (50, 170, 60)}))
    assert att.mode == "target" and att.appearance_used
    found = {cell for cell in ((1, 1), (3, 4), (4, 0))
             for reg in att.impurities if reg.mask[_box(*cell)].any()}
    assert found == {(1, 1), (3, 4), (4, 0)}
    for seed in (13, 15, 17):
        assert taught.attend(_scene(seed)).mode != "target"


def test_taught_model_vetoes_a_salient_but_familiar_look():
    teal = (40, 160, 200)

    def mixed(seed: int) -> Heightmaps:
        rng = np.random.default_rng(seed)
        odd = {(int(r), int(c)): teal for r, c in rng.integers(0, 5, (8, 2))}
        return heightmaps_of(item_grid(rng, odd), rng, texture=6.0)

    model = AppearanceModel().fit([mixed(s) for s in range(0, 20, 2)], np.random.default_rng(0))
    scene = _scene(21, {(2, 2): teal})
    alone = Attender(RECIPE).attend(scene)
    assert alone.mode == "target", "saliency alone calls the rare variant an impurity"
    fused = _variant(RECIPE, use="fuse")
    taught = Attender(fused, model).attend(scene)
    assert taught.mode != "target", taught.reason
    assert Attender(fused, model).attend(_scene(23, {(2, 2): teal, (0, 4): IMPURITY_RGB})).mode == "target"


def test_load_attender_reports_a_missing_model(tmp_path):
    text = RECIPE.path.read_text().replace("../models/toy-blocks.appearance.npz", "gone.npz")
    assert "gone.npz" in text
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ModelFileError, match=r"gone\.npz.*sorter teach"):
        load_attender(load_recipe(path))
    untaught = RECIPE.model_copy(update={"perception": RECIPE.perception.model_copy(update={
        "appearance": RECIPE.perception.appearance.model_copy(update={"model": None})})})
    assert load_attender(untaught).appearance is None
    assert "saliency alone" in load_attender(untaught).note
    assert "guards" in load_attender(RECIPE).note, "toy-blocks ships a guard"


def test_a_clear_peak_is_an_impurity_only_where_the_recipe_allows_it():
    """A sliver of a half-hidden impurity stands far out of the saliency map but has little
    centre-surround feature contrast; ``saliency.clear_peak_ratio`` accepts it, and only it."""
    sliver = Region(mask=np.ones((8, 8), bool), peak=(4, 4), score=0.0, area_m2=3e-4, contrast=7.0,
                    raw_peak=0.03)
    assert not Attender(RECIPE)._verdict(sliver, taught=False).accepted, "off by default"
    clear = _with_saliency(clear_peak_ratio=6.0)
    verdict = clear._verdict(sliver, taught=False)
    assert verdict.accepted and "clear peak" in verdict.reason
    assert not clear._verdict(replace(sliver, contrast=5.0), taught=False).accepted
    assert not clear._verdict(replace(sliver, area_m2=1e-4), taught=False).accepted, "still needs its area"


def test_the_recipe_may_lower_the_feature_contrast_an_impurity_needs():
    """A low-contrast impurity (a grey stone on pale caps: feature contrast 0.046) passes only where the
    recipe lowers ``saliency.min_feature_contrast`` below it; the reason names the floor used."""
    stone = Region(mask=np.ones((8, 8), bool), peak=(4, 4), score=0.0, area_m2=3e-4, contrast=3.0,
                   raw_peak=0.046)
    default = Attender(RECIPE)._verdict(stone, taught=False)
    assert not default.accepted and "0.046 < 0.048" in default.reason
    lowered = _with_saliency(min_feature_contrast=0.045)
    verdict = lowered._verdict(stone, taught=False)
    assert verdict.accepted and "0.046 >= 0.045" in verdict.reason
    assert not lowered._verdict(replace(stone, raw_peak=0.044), taught=False).accepted


def _with_saliency(**update) -> Attender:
    """An attender on toy-blocks with its saliency settings changed by ``update``."""
    sal = RECIPE.perception.saliency.model_copy(update=update)
    return Attender(RECIPE.model_copy(update={"perception": RECIPE.perception.model_copy(
        update={"saliency": sal})}))


def _variant(recipe, deaf: bool = False, use: str = "guard"):
    """``recipe`` with the taught model in ``use``; ``deaf`` makes saliency accept nothing (it misses
    what the guard is for: a sliver too small for its contrast tests)."""
    perception = recipe.perception.model_copy(update={
        "appearance": recipe.perception.appearance.model_copy(update={"use": use})})
    if deaf:
        perception = perception.model_copy(update={
            "saliency": perception.saliency.model_copy(update={"min_peak_ratio": 1e6})})
    return recipe.model_copy(update={"perception": perception})


def test_a_guard_searches_where_something_unlike_the_product_shows_before_declaring_clean(taught):
    guard = Attender(_variant(RECIPE, deaf=True), taught.appearance)
    for seed, cell in ((19, (2, 3)), (21, (0, 4))):
        scene = _scene(seed, {cell: YELLOW})
        assert Attender(_variant(RECIPE, deaf=True)).attend(scene).mode == "clean"
        att = guard.attend(scene)
        assert att.mode == "cluster" and "looks unlike the product" in att.reason, att.reason
        rows, cols = _box(*cell)
        assert att.crop.contains((rows.start + rows.stop) / 2, (cols.start + cols.stop) / 2)
        assert att.cluster.mask[rows, cols].any() and att.appearance_used
        assert att.target_mask.sum() == CROP_CELLS ** 2, "a search, never a grasp target"
    for seed in (13, 15, 17):
        att = guard.attend(_scene(seed))
        assert att.mode == "clean" and "nothing looks unlike the product" in att.reason


def test_a_guard_leaves_targets_and_clusters_to_saliency(taught):
    guard = Attender(_variant(RECIPE), taught.appearance)
    assert "guards" in guard.note and not guard.fused
    scene = _scene(11, {(1, 1): IMPURITY_RGB, (3, 4): YELLOW})
    alone, guarded = Attender(RECIPE).attend(scene), guard.attend(scene)
    assert guarded.mode == alone.mode == "target"
    assert np.array_equal(guarded.target_mask, alone.target_mask)
    assert [r.accepted for r in guarded.regions] == [r.accepted for r in alone.regions]
    assert guarded.novelty is None and not guarded.appearance_used, "the model is not asked"


HEAP = (92, 92, 60, 60)  # rows, cols, height and width in cells of a heap tall enough to hide a block


def _heap_scene(seed: int, sliver: bool) -> Heightmaps:
    """Product items around a 60 mm heap of product; with ``sliver``, a strip of yellow shows at the
    heap's right edge (a side face of a block under it: a few cells, too little for saliency)."""
    rng = np.random.default_rng(seed)
    r0, c0, nr, nc = HEAP
    cells = item_grid(rng, {}) + [(r0, c0, nr, nc, 0.06, PRODUCT_RGB)]
    if sliver:
        cells.append((r0 + 24, c0 + nc - 6, 8, 6, 0.061, YELLOW))
    return heightmaps_of(cells, rng, texture=6.0)


def test_a_guard_points_a_cluster_search_at_what_looks_unlike_the_product(taught):
    """A cluster search over a heap where a sliver of something unlike the product shows is centred
    on the sliver and carries it as the sighting; it stays a search (no grasp target). Without a
    sliver the guard leaves DBSCAN's verdict as it was."""
    guard = Attender(_variant(RECIPE, deaf=True), taught.appearance)
    blind = Attender(_variant(RECIPE, deaf=True))
    r0, c0, nr, nc = HEAP
    sliver = (slice(r0 + 24, r0 + 32), slice(c0 + nc - 6, c0 + nc))
    for seed in (3, 5):
        scene = _heap_scene(seed, sliver=True)
        plain = blind.attend(scene)
        assert plain.mode == "cluster" and plain.sighting is None
        att = guard.attend(scene)
        assert att.mode == "cluster" and "looks unlike the product" in att.reason, att.reason
        assert att.sighting is not None and att.sighting[sliver].mean() > 0.5
        assert att.sighting.sum() < 0.1 * nr * nc, "the sighting is around the sliver, not the heap"
        assert att.crop.contains(r0 + 28, c0 + nc - 3)
        assert att.target_mask.sum() == CROP_CELLS ** 2 and att.target is None, "a search, never a target"
        assert np.hypot(*np.subtract(att.crop_center_rc, (r0 + 28, c0 + nc - 3))) < \
            np.hypot(*np.subtract(plain.crop_center_rc, (r0 + 28, c0 + nc - 3))), "centred on the sliver"
        quiet = guard.attend(_heap_scene(seed, sliver=False))
        same = blind.attend(_heap_scene(seed, sliver=False))
        assert quiet.mode == "cluster" and quiet.sighting is None
        assert quiet.crop == same.crop and quiet.reason == same.reason


def _confirming(recipe, confirm: bool, floor: float = 1.0):
    """``recipe`` with a guard (``confirm`` as given) and a feature-contrast floor no region reaches."""
    perception = _variant(recipe).perception
    perception = perception.model_copy(update={
        "appearance": perception.appearance.model_copy(update={"confirm": confirm}),
        "saliency": perception.saliency.model_copy(update={"min_feature_contrast": floor})})
    return recipe.model_copy(update={"perception": perception})


def test_a_confirming_guard_makes_a_whole_salient_region_unlike_the_product_the_target(taught):
    """An impurity in the open that saliency proposes but its feature-contrast floor rejects: the guard
    alone only searches around it; with ``appearance.confirm`` the taught look confirms it and it is the
    target, with a reason that says so. Clean product stays clean."""
    for seed, cell in ((19, (2, 3)), (21, (0, 4))):
        scene = _scene(seed, {cell: YELLOW})
        searched = Attender(_confirming(RECIPE, confirm=False), taught.appearance).attend(scene)
        assert searched.mode == "cluster" and searched.target is None, searched.reason
        att = Attender(_confirming(RECIPE, confirm=True), taught.appearance).attend(scene)
        assert att.mode == "target" and "confirmed by the taught look" in att.reason, att.reason
        rows, cols = _box(*cell)
        assert att.target_mask[rows, cols].mean() > 0.5
    confirming = Attender(_confirming(RECIPE, confirm=True), taught.appearance)
    for seed in (13, 15, 17):
        assert confirming.attend(_scene(seed)).mode == "clean"


def test_a_confirming_guard_leaves_a_heap_search_a_search(taught):
    """With a heap that may hide an impurity, even a whole salient region unlike the product stays a
    sighting to push around: in a heap it is mostly an impurity half under an item, which a grasp
    would lift instead (traced on mushrooms). Only a batch about to be declared clean is confirmed."""
    rng = np.random.default_rng(3)
    r0, c0, nr, nc = HEAP
    scene = heightmaps_of(item_grid(rng, {(0, 0): YELLOW}) + [(r0, c0, nr, nc, 0.06, PRODUCT_RGB)], rng,
                          texture=6.0)
    att = Attender(_confirming(RECIPE, confirm=True), taught.appearance).attend(scene)
    assert att.mode == "cluster" and att.sighting is not None and att.target is None, att.reason
    rows, cols = _box(0, 0)
    assert att.sighting[rows, cols].mean() > 0.5, "the search is pointed at the yellow item"
