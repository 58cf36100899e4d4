"""The taught product look: novelty on synthetic product, save/load round trip, safe file handling."""

import numpy as np
import pytest

from sorter.errors import ModelFileError
from sorter.perception.appearance import AppearanceModel, novel_regions, patch_features
from tests.perception.synthetic import IMPURITY_RGB, heightmaps_of, item_grid


def _scene(seed: int, odd: dict | None = None):
    rng = np.random.default_rng(seed)
    return heightmaps_of(item_grid(rng, odd or {}), rng, texture=6.0)


@pytest.fixture(scope="module")
def model() -> AppearanceModel:
    return AppearanceModel().fit([_scene(s) for s in range(0, 16, 2)], np.random.default_rng(0))


def test_mixture_scoring_matches_scikit_learn():
    from sklearn.mixture import GaussianMixture

    from sorter.perception.appearance import _Mixture

    x = np.random.default_rng(1).normal(size=(500, 6))
    gmm = GaussianMixture(3, covariance_type="full", random_state=0).fit(x)
    mix = _Mixture(gmm.weights_, gmm.means_, gmm.precisions_cholesky_)
    assert np.allclose(mix.nll(x), -gmm.score_samples(x), atol=1e-8)


def test_impurity_is_novel_and_clean_product_is_not(model):
    for seed in (1, 3, 5):
        clean = model.novelty_map(_scene(seed))
        assert np.nanmax(clean) < 0.5
        hm = _scene(seed, {(2, 3): IMPURITY_RGB, (0, 0): (225, 200, 40)})
        nov = model.novelty_map(hm)
        for r, c in ((2, 3), (0, 0)):
            box = nov[12 + r * 40:32 + r * 40, 12 + c * 40:32 + c * 40]
            assert np.nanmax(box) > 5.0
        masks = novel_regions(nov, 0.0, 20)
        assert len(masks) == 2


def test_table_cells_are_not_scored(model):
    hm = _scene(7)
    nov = model.novelty_map(hm)
    assert np.all(np.isnan(nov[hm.height == 0]))
    feats, ok = patch_features(hm, 0.005)
    assert feats.shape == (112, 112, 12) and ok.shape == (112, 112)


def test_save_load_round_trip(model, tmp_path):
    path = model.save(tmp_path / "product.appearance.npz")
    loaded = AppearanceModel.load(path)
    hm = _scene(9, {(1, 1): IMPURITY_RGB})
    assert np.array_equal(model.novelty_map(hm), loaded.novelty_map(hm), equal_nan=True)
    assert loaded.metadata["frames"] == 8


def test_missing_corrupt_or_pickled_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist.*sorter teach"):
        AppearanceModel.load(tmp_path / "nope.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(ModelFileError, match="unreadable.*sorter teach") as refused:
        AppearanceModel.load(garbage)
    assert "unsafely" not in str(refused.value), "numpy's advice to load pickles must not reach a user"
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, weights=np.array([object()], dtype=object), metadata=np.array("{}"))
    with pytest.raises(ModelFileError, match="sorter teach"):
        AppearanceModel.load(pickled)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, weights=np.ones(2), means=np.ones((2, 3)), precision_chol=np.ones((2, 3, 3)),
             calibration=np.zeros(3), metadata=np.array('{"format_version": 1}'))
    with pytest.raises(ModelFileError, match="inconsistent"):
        AppearanceModel.load(wrong)


def test_teaching_needs_product_in_view():
    empty = [heightmaps_of([]) for _ in range(4)]
    with pytest.raises(ValueError, match="too little product"):
        AppearanceModel().fit(empty, np.random.default_rng(0))
