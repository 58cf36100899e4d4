"""VOCUS2 properties on synthetic images with known answers, and salient-region segmentation."""

import numpy as np
import pytest

from sorter.perception.heightmap import PerceptionError
from sorter.perception.saliency import (
    fuse,
    grow_region,
    opponent_colors,
    saliency_input,
    salient_regions,
    uniqueness_weight,
    vocus2,
)
from sorter.recipe import SaliencySpec
from tests.perception.synthetic import IMPURITY_RGB, PRODUCT_RGB, heightmaps_of, item_grid

FUSIONS = ["mean", "max", "uniqueness"]


def _lattice(seed: int, odd: dict) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return heightmaps_of(item_grid(rng, odd), rng, texture=5.0).color


def _box_of(r: int, c: int) -> tuple[slice, slice]:
    return slice(12 + r * 40, 32 + r * 40), slice(12 + c * 40, 32 + c * 40)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_uniform_image_gives_a_flat_zero_map(fusion):
    for value in (0, 128, 255):
        sal = vocus2(np.full((224, 224, 3), value, np.uint8), SaliencySpec(fusion=fusion))
        assert sal.shape == (224, 224) and sal.dtype == np.float32
        assert not sal.any()
        assert salient_regions(sal, SaliencySpec()) == []


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("seed", [1, 3, 5])
def test_the_odd_patch_wins(fusion, seed):
    rng = np.random.default_rng(seed)
    cell = tuple(int(v) for v in rng.integers(0, 5, 2))
    img = _lattice(seed, {cell: IMPURITY_RGB})
    sal = vocus2(img, SaliencySpec(fusion=fusion))
    assert sal.min() == 0.0 and sal.max() == 1.0
    rows, cols = _box_of(*cell)
    r, c = np.unravel_index(np.argmax(sal), sal.shape)
    assert rows.start - 4 <= r < rows.stop + 4 and cols.start - 4 <= c < cols.stop + 4
    inside = sal[rows, cols].mean()
    others = [sal[_box_of(i, j)].mean() for i in range(5) for j in range(5) if (i, j) != cell]
    assert inside > 1.15 * max(others)
    if fusion == "uniqueness":
        assert inside > 8 * np.mean(others), "uniqueness suppresses the 24 look-alikes"


def test_uniqueness_prefers_the_channel_with_one_peak():
    one = np.zeros((64, 64), np.float32)
    one[30:34, 30:34] = 1.0
    many = np.zeros((64, 64), np.float32)
    many[4::12, 4::12] = 1.0
    assert uniqueness_weight(one) == 1.0
    assert uniqueness_weight(many) == pytest.approx(1 / np.sqrt(25))
    assert uniqueness_weight(np.zeros((8, 8), np.float32)) == 0.0
    fused = fuse([one, many], "uniqueness")
    assert fused[31, 31] > 4 * fused[4, 4]
    assert np.allclose(fuse([one, many], "mean"), (one + many) / 2)
    assert np.allclose(fuse([one, many], "max"), np.maximum(one, many))


def test_opponent_channels_follow_the_definition():
    opp = opponent_colors(np.array([[[255, 0, 0], [0, 0, 255], [255, 255, 255]]] * 2, np.uint8))
    assert np.allclose(opp[0, 0], [1 / 3, 1.0, -0.5])
    assert np.allclose(opp[0, 1], [1 / 3, 0.0, 1.0])
    assert np.allclose(opp[0, 2], [1.0, 0.0, 0.0])


def test_raw_map_measures_how_different_not_only_which():
    spec = SaliencySpec(fusion="mean")
    peaks = []
    for odd in (IMPURITY_RGB, (60, 95, 190)):
        rng = np.random.default_rng(7)
        hm = heightmaps_of(item_grid(rng, {(2, 2): odd}), rng, texture=5.0)
        peaks.append(vocus2(saliency_input(hm, hm.height > 0), spec, normalize=False).max())
    assert peaks[0] > 3 * peaks[1]


def test_saliency_input_paints_the_table_in_the_product_colour():
    rng = np.random.default_rng(3)
    hm = heightmaps_of(item_grid(rng, {(0, 0): IMPURITY_RGB}, spread=0.0), rng, texture=0.0)
    objects = hm.height > 0
    img = saliency_input(hm, objects)
    assert np.all(img[~objects] == PRODUCT_RGB)
    assert np.all(img[objects] == hm.color[objects])
    sal = vocus2(img, SaliencySpec())
    rows, cols = _box_of(0, 0)
    r, c = np.unravel_index(np.argmax(sal), sal.shape)
    assert rows.start <= r < rows.stop and cols.start <= c < cols.stop
    flat = saliency_input(hm, np.zeros_like(objects))
    assert not vocus2(flat, SaliencySpec()).any()


def test_saturated_and_tiny_inputs_do_not_crash():
    spec = SaliencySpec()
    img = np.zeros((224, 224, 3), np.uint8)
    img[100:130, 100:130] = 255
    sal = vocus2(img, spec)
    assert np.isfinite(sal).all() and sal[115, 115] > 0.5
    assert vocus2(np.zeros((3, 5, 3), np.uint8), spec).shape == (3, 5)
    with pytest.raises(PerceptionError, match="HxWx3"):
        vocus2(np.zeros((224, 224), np.uint8), spec)


def test_center_bias_favours_the_middle():
    img = np.full((224, 224, 3), 100, np.uint8)
    img[10:30, 10:30] = 250
    img[100:120, 100:120] = 250
    plain = vocus2(img, SaliencySpec(center_bias=False))
    biased = vocus2(img, SaliencySpec(center_bias=True))
    assert abs(plain[20, 20] - plain[110, 110]) < 0.1
    assert biased[110, 110] > 2 * biased[20, 20]


def test_regions_find_each_odd_item_once_and_rank_them():
    img = _lattice(11, {(1, 3): IMPURITY_RGB, (3, 0): (225, 200, 40)})
    spec = SaliencySpec(max_regions=5)
    sal = vocus2(img, spec)
    regions = salient_regions(sal, spec, cell_area=4e-6)
    hits = set()
    for reg in regions[:2]:
        for cell in ((1, 3), (3, 0)):
            rows, cols = _box_of(*cell)
            if reg.mask[rows, cols].any():
                hits.add(cell)
    assert hits == {(1, 3), (3, 0)}
    assert [r.score for r in regions] == sorted((r.score for r in regions), reverse=True)
    assert regions[0].contrast > regions[-1].contrast
    union = np.zeros(sal.shape, int)
    for reg in regions:
        union += reg.mask
        assert np.all(sal[reg.mask] >= spec.region_threshold * reg.saliency - 1e-6)
        assert reg.area_m2 == pytest.approx(reg.mask.sum() * 4e-6)
    assert union.max() == 1, "regions never overlap"


def test_grow_region_is_the_connected_part_above_the_level():
    sal = np.zeros((20, 20), np.float32)
    sal[2:6, 2:6] = 1.0
    sal[2:6, 10:14] = 1.0
    mask = grow_region(sal, (3, 3), 0.75)
    assert mask.sum() == 16 and mask[2:6, 2:6].all()
