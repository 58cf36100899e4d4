"""The product's taught look: a novelty model over colour and texture of object cells (beyond the papers).

Saliency finds the one thing that differs most from the rest; a line may carry several impurities at
once, or a product whose look varies, and saliency alone cannot tell "the odd one" from "an impurity".
``sorter teach`` shows the model a few clean frames; at run time it scores how unlike the product every
patch of the workspace looks, which confirms or vetoes salient regions and finds impurities that
saliency ranked second or missed.

Features, per 2 x 2-cell patch (4 mm) of object cells: the mean of the opponent colours L, a, b over
the object cells of boxes of 5, 9 and 15 cells (the spot, its object, its neighbourhood: a dark stone
and the shaded rim of a bright mushroom share a colour but not a 30 mm surrounding) and their standard
deviation in the smallest box (texture, shading). The model is a
scikit-learn ``GaussianMixture`` (full covariances); novelty is the negative log-likelihood, averaged
over object patches in a small neighbourhood so one noisy patch does not decide. Teaching also measures
the highest such novelty in each clean frame. A frame's peak is the maximum over many patches, so the
peaks follow a Gumbel law (fitted by moments); its ``1 - DESIGN_FALSE_ALARM`` quantile is the clean
level, and ``novelty_map`` reports novelty above it in standard deviations of the peaks: 0 means "more
unusual than clean product gets in all but 1 frame in 500", and the recipe's ``appearance.threshold``
(default 0) is the decision level.

File format: a NumPy ``.npz`` of plain arrays (mixture parameters, calibration, feature settings, a
JSON metadata string), loaded with ``allow_pickle=False``: a model file cannot carry code.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sorter.errors import ModelFileError
from sorter.perception.heightmap import Heightmaps
from sorter.perception.saliency import Region, foreground_mask, opponent_colors

FORMAT_VERSION = 1
STRIDE = 2  # cells per patch side
MEAN_WINDOWS = (5, 9, 15)  # cells (10, 18, 30 mm): colour of the spot, of its object, of its surroundings
FEATURES = 3 * len(MEAN_WINDOWS) + 3  # opponent means per window, then opponent std in the smallest
SMOOTH = 3  # patches, neighbourhood over which patch novelty is averaged
MIN_OBJECT_SHARE = 0.8  # a patch is scored when this share of its feature window is object cells
COMPONENTS = 6
MAX_TRAIN_SAMPLES = 40000
DESIGN_FALSE_ALARM = 0.002  # per clean frame: novelty 0 is the clean peak's 99.8 % quantile (Gumbel fit)
MIN_SCALE = 1.0  # nats; floor of the novelty unit


@dataclass(frozen=True)
class _Mixture:
    weights: np.ndarray
    means: np.ndarray
    precision_chol: np.ndarray  # K x D x D, as in scikit-learn

    def nll(self, x: np.ndarray) -> np.ndarray:
        """Negative log-likelihood of rows of ``x`` (matches ``GaussianMixture.score_samples``)."""
        d = x.shape[1]
        log_det = np.sum(np.log(np.diagonal(self.precision_chol, axis1=1, axis2=2)), axis=1)
        log_prob = np.empty((x.shape[0], self.weights.size), np.float64)
        for k in range(self.weights.size):
            y = (x - self.means[k]) @ self.precision_chol[k]
            log_prob[:, k] = -0.5 * (d * math.log(2 * math.pi) + np.sum(y * y, axis=1)) + log_det[k]
        log_prob += np.log(self.weights)[None, :]
        top = log_prob.max(axis=1, keepdims=True)
        return -(top[:, 0] + np.log(np.sum(np.exp(log_prob - top), axis=1)))


class AppearanceModel:
    """Novelty of object cells against the taught product look; see the module docstring."""

    def __init__(self, mixture: _Mixture | None = None, clean_level: float = 0.0, scale: float = 1.0,
                 min_point_height: float = 0.005, metadata: dict | None = None):
        self._mixture = mixture
        self.clean_level = clean_level
        self.scale = scale
        self.min_point_height = min_point_height
        self.metadata = dict(metadata or {})

    @property
    def fitted(self) -> bool:
        return self._mixture is not None

    def fit(self, heightmaps_list: list[Heightmaps], rng: np.random.Generator,
            min_point_height: float = 0.005) -> AppearanceModel:
        """Fit on clean frames, then measure the clean novelty level on the same frames.

        The mixture has under 200 parameters against tens of thousands of patches, so its in-sample
        likelihood is a fair estimate of what unseen clean product scores.
        """
        from sklearn.mixture import GaussianMixture

        if len(heightmaps_list) < 2:
            raise ValueError("teaching needs at least 2 clean frames")
        self.min_point_height = min_point_height
        x = np.concatenate([self._samples(hm)[0] for hm in heightmaps_list])
        if x.shape[0] < 10 * COMPONENTS:
            raise ValueError("the teaching frames show too little product; check the camera and workspace")
        if x.shape[0] > MAX_TRAIN_SAMPLES:
            x = x[rng.choice(x.shape[0], MAX_TRAIN_SAMPLES, replace=False)]
        gmm = GaussianMixture(COMPONENTS, covariance_type="full", reg_covar=1e-4,
                              random_state=int(rng.integers(2 ** 31 - 1))).fit(x)
        self._mixture = _Mixture(gmm.weights_, gmm.means_, gmm.precisions_cholesky_)
        peaks = np.array([self._peak_nll(hm) for hm in heightmaps_list])
        self.scale = max(float(peaks.std()), MIN_SCALE)
        self.clean_level = gumbel_quantile(float(peaks.mean()), self.scale, 1.0 - DESIGN_FALSE_ALARM)
        self.metadata.update(frames=len(heightmaps_list), train_samples=int(x.shape[0]),
                             clean_peaks=[round(float(p), 3) for p in peaks])
        return self

    def novelty_map(self, heightmaps: Heightmaps, foreground: np.ndarray | None = None) -> np.ndarray:
        """HxW float32 novelty in units above the clean level (> 0: unlike any clean product); NaN off
        objects and where a patch's feature window is not mostly object. ``foreground`` is the
        ``saliency.foreground_mask`` when the caller has it already."""
        nll = self._nll_grid(heightmaps, foreground)
        out = (nll - self.clean_level) / self.scale
        n = heightmaps.grid.cells
        return cv2.resize(out, (n, n), interpolation=cv2.INTER_NEAREST)

    def score_regions(self, heightmaps: Heightmaps, regions: list[Region],
                      novelty: np.ndarray | None = None) -> list[float | None]:
        """Each region's novelty: the highest patch novelty inside it (None where nothing was scored)."""
        nov = self.novelty_map(heightmaps) if novelty is None else novelty
        return [region_novelty(nov, r.mask) for r in regions]

    def _peak_nll(self, hm: Heightmaps) -> float:
        nll = self._nll_grid(hm)
        return float(np.nanmax(nll)) if np.isfinite(nll).any() else 0.0

    def _nll_grid(self, hm: Heightmaps, foreground: np.ndarray | None = None) -> np.ndarray:
        """Smoothed negative log-likelihood per patch (patch grid), NaN where not scored."""
        if self._mixture is None:
            raise ValueError("the appearance model is not fitted; run `sorter teach`")
        x, ok = self._samples(hm, foreground)
        raw = np.zeros(ok.shape, np.float32)
        raw[ok] = self._mixture.nll(x)
        w = ok.astype(np.float32)
        num = cv2.boxFilter(raw * w, -1, (SMOOTH, SMOOTH), normalize=False, borderType=cv2.BORDER_CONSTANT)
        den = cv2.boxFilter(w, -1, (SMOOTH, SMOOTH), normalize=False, borderType=cv2.BORDER_CONSTANT)
        return np.where(ok, num / np.maximum(den, 1.0), np.nan).astype(np.float32)

    def _samples(self, hm: Heightmaps, foreground: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows of scored patches and the patch-grid mask of which patches they are."""
        feats, ok = patch_features(hm, self.min_point_height, foreground)
        return feats[ok].astype(np.float64), ok

    def save(self, path: str | Path) -> Path:
        """Write the model as a plain-array ``.npz`` (no pickled objects)."""
        if self._mixture is None:
            raise ValueError("nothing to save: the appearance model is not fitted")
        path = Path(path)
        meta = {**self.metadata, "format_version": FORMAT_VERSION, "stride": STRIDE,
                "mean_windows": list(MEAN_WINDOWS), "smooth": SMOOTH, "features": FEATURES}
        with path.open("wb") as fh:
            np.savez(fh, weights=self._mixture.weights, means=self._mixture.means,
                     precision_chol=self._mixture.precision_chol,
                     calibration=np.array([self.clean_level, self.scale, self.min_point_height]),
                     metadata=np.array(json.dumps(meta)))
        return path

    @classmethod
    def load(cls, path: str | Path, recipe_file: str | Path | None = None) -> AppearanceModel:
        """Read a model written by ``save``; ModelFileError names the file and what to do."""
        path = Path(path)
        hint = f"run `sorter teach --recipe {recipe_file or '<recipe>'}` to create it"
        if not path.is_file():
            raise ModelFileError(f"appearance model {path} does not exist; {hint}")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["metadata"]))
                mixture = _Mixture(data["weights"], data["means"], data["precision_chol"])
                clean, scale, mph = (float(v) for v in data["calibration"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, TypeError) as exc:
            # numpy's own text may advise loading pickles unsafely: never pass that on to a user
            raise ModelFileError(f"appearance model {path} is unreadable: not a plain-array .npz written by "
                                 f"`sorter teach` ({type(exc).__name__}); {hint}") from None
        _check_model(path, meta, mixture, hint)
        return cls(mixture, clean, scale, mph, meta)


def _check_model(path: Path, meta: dict, m: _Mixture, hint: str) -> None:
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"appearance model {path} has format {meta.get('format_version')}, "
                             f"this version reads {FORMAT_VERSION}; {hint}")
    k, d = m.means.shape if m.means.ndim == 2 else (0, 0)
    if d != FEATURES or k < 1 or m.weights.shape != (k,) or m.precision_chol.shape != (k, d, d):
        raise ModelFileError(f"appearance model {path} has inconsistent parameters; {hint}")
    if not all(np.all(np.isfinite(a)) for a in (m.weights, m.means, m.precision_chol)):
        raise ModelFileError(f"appearance model {path} holds non-finite numbers; {hint}")


def patch_features(hm: Heightmaps, min_point_height: float, foreground: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(P x P x FEATURES) features on the patch grid and the (P x P) mask of patches worth scoring."""
    fg = foreground_mask(hm, min_point_height) if foreground is None else foreground
    objects = fg.astype(np.float32)
    opp = opponent_colors(hm.color)
    feats, near = [], None
    for k in MEAN_WINDOWS:
        mean, share = _object_mean(opp, objects, k)
        feats.append(mean)
        near = share if near is None else near
    mean, _ = _object_mean(opp, objects, MEAN_WINDOWS[0])
    sq, _ = _object_mean(opp * opp, objects, MEAN_WINDOWS[0])
    feats.append(np.sqrt(np.maximum(sq - mean * mean, 0.0)))
    out = np.concatenate(feats, axis=-1)[::STRIDE, ::STRIDE]
    ok = (objects[::STRIDE, ::STRIDE] > 0) & (near[::STRIDE, ::STRIDE] >= MIN_OBJECT_SHARE)
    return out, ok


def _object_mean(x: np.ndarray, objects: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``x`` over the object cells of each k x k box, and the boxes' object share."""
    share = cv2.boxFilter(objects, -1, (k, k), borderType=cv2.BORDER_CONSTANT)
    total = cv2.boxFilter(x * objects[..., None], -1, (k, k), borderType=cv2.BORDER_CONSTANT)
    return total / np.maximum(share, 1e-6)[..., None], share


def gumbel_quantile(mean: float, std: float, q: float) -> float:
    """Quantile ``q`` of the Gumbel (maximum) law with the given mean and standard deviation."""
    beta = std * math.sqrt(6.0) / math.pi
    mu = mean - 0.5772156649 * beta  # Euler-Mascheroni constant
    return mu - beta * math.log(-math.log(q))


def region_novelty(novelty: np.ndarray, mask: np.ndarray) -> float | None:
    """Highest novelty inside ``mask``; None when no scored patch falls in it."""
    vals = novelty[mask]
    vals = vals[np.isfinite(vals)]
    return float(vals.max()) if vals.size else None


def novel_regions(novelty: np.ndarray, threshold: float, min_cells: int) -> list[np.ndarray]:
    """Connected areas (8-connected) where novelty exceeds ``threshold`` and at least ``min_cells``
    cells large, most novel first."""
    above = np.nan_to_num(novelty, nan=-np.inf) > threshold
    count, labels = cv2.connectedComponents(above.astype(np.uint8), connectivity=8)
    masks = [labels == k for k in range(1, count)]
    masks = [m for m in masks if int(m.sum()) >= min_cells]
    return sorted(masks, key=lambda m: -float(np.nanmax(np.where(m, novelty, -np.inf))))
