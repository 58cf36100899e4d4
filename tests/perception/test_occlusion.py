"""DBSCAN occluded-region inference on synthetic heaps with known clusters."""

import numpy as np
import pytest

from sorter.perception.occlusion import find_clusters, object_mask
from sorter.recipe import OcclusionSpec
from tests.perception.synthetic import GRID, PRODUCT_RGB, heightmaps_of

SPEC = OcclusionSpec()


def test_empty_table_has_no_clusters():
    assert find_clusters(heightmaps_of([]), SPEC) == []


def test_separate_heaps_are_separate_clusters_largest_first():
    hm = heightmaps_of([(20, 20, 30, 30, 0.03, PRODUCT_RGB),
                        (120, 100, 50, 60, 0.05, PRODUCT_RGB),
                        (180, 30, 20, 20, 0.02, PRODUCT_RGB)])
    clusters = find_clusters(hm, SPEC)
    assert len(clusters) == 3
    assert [c.area_m2 for c in clusters] == sorted((c.area_m2 for c in clusters), reverse=True)
    big = clusters[0]
    assert big.area_m2 == pytest.approx(50 * 60 * GRID.cell_size ** 2, rel=0.02)
    assert big.max_height == pytest.approx(0.05)
    assert big.center_rc == pytest.approx((144.5, 129.5), abs=0.6)
    x, y = GRID.center_of(144.5, 129.5)
    assert big.center_xy == pytest.approx((float(x), float(y)), abs=1e-3)
    assert big.volume_m3 == pytest.approx(big.area_m2 * 0.05, rel=0.02)
    assert not (clusters[0].mask & clusters[1].mask).any()


def test_touching_items_at_one_level_join_and_a_tall_step_splits():
    joined = heightmaps_of([(50, 50, 30, 30, 0.03, PRODUCT_RGB), (50, 80, 30, 30, 0.035, PRODUCT_RGB)])
    assert len(find_clusters(joined, SPEC)) == 1
    step = heightmaps_of([(50, 50, 30, 30, 0.02, PRODUCT_RGB), (50, 80, 30, 30, 0.06, PRODUCT_RGB)])
    assert len(find_clusters(step, SPEC)) == 2
    flat = OcclusionSpec(height_scale=0.1)
    assert len(find_clusters(step, flat)) == 1, "a small height scale lets the step join"


def test_scattered_specks_are_noise_not_clusters():
    rng = np.random.default_rng(5)
    cells = [(int(r), int(c), 1, 1, 0.02, PRODUCT_RGB) for r, c in rng.integers(0, 224, (60, 2))]
    hm = heightmaps_of(cells)
    assert object_mask(hm, SPEC).sum() >= 55
    assert find_clusters(hm, SPEC) == []


def test_thresholds_decide_whether_a_cluster_can_hide_an_impurity():
    low_big = find_clusters(heightmaps_of([(40, 40, 80, 80, 0.02, PRODUCT_RGB)]), SPEC)[0]
    high_small = find_clusters(heightmaps_of([(40, 40, 15, 15, 0.06, PRODUCT_RGB)]), SPEC)[0]  # 9 cm^2
    stacked = find_clusters(heightmaps_of([(40, 40, 15, 30, 0.05, PRODUCT_RGB)]), SPEC)[0]  # 18 cm^2
    pile = heightmaps_of([(40, 40, 50, 50, 0.02, PRODUCT_RGB), (50, 50, 25, 25, 0.05, PRODUCT_RGB)])
    assert not low_big.can_hide(SPEC)
    assert not high_small.can_hide(SPEC)
    assert stacked.can_hide(SPEC), "an item lying on an impurity (two layers) must be looked under"
    layers = find_clusters(pile, SPEC)
    assert len(layers) == 2 and not layers[0].can_hide(SPEC), "a 30 mm step splits at height_scale 1"
    soft = OcclusionSpec(height_scale=0.2)
    heap = find_clusters(pile, soft)
    assert len(heap) == 1 and heap[0].can_hide(soft) and heap[0].max_height == pytest.approx(0.05)


def test_cells_under_the_point_height_are_table():
    hm = heightmaps_of([(40, 40, 30, 30, SPEC.min_point_height * 0.5, PRODUCT_RGB)])
    assert find_clusters(hm, SPEC) == []
