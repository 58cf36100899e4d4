"""VOCUS2 saliency (Frintrop, Werner and Martin Garcia, CVPR 2015) and salient-region segmentation.

VOCUS2: opponent colour space (L = (R+G+B)/3, a = R-G, b = B-(R+G)/2, RGB in [0, 1]); a centre pyramid
blurs each layer with ``sc * 2**(s/n)`` and a twin surround pyramid blurs the centre images again so that
the surround sigma is ``ss * 2**(s/n)``; on-off = max(C - S, 0), off-on = max(S - C, 0). The maps are
fused over scales and layers (each resized to the input size) by the arithmetic mean, VOCUS2's default
feature fusion, then over the two polarities and the three channels by the recipe's ``fusion`` (VOCUS2's
conspicuity fusion): the mean, the maximum or the uniqueness weight 1/sqrt(#local maxima above half the
map's maximum); an optional centre bias, then min-max normalisation. Keeping the scale fusion a mean
gives the six feature maps a fixed unit (opponent-colour contrast) whatever the recipe's fusion, and
the strongest of them (``SaliencyMaps.features``) is what the "impurity present" test thresholds: an
impurity usually differs from the product in one feature (a stone is darker, a red block redder), which
a mean over six features would dilute.

Where it runs: on the colour heightmap, not the camera image. The heightmap is the workspace only (no
robot base, bin or table edge to attract attention), orthographic (an impurity has the same size in cells
wherever it lies, so sigmas and region areas mean millimetres), 224 x 224 (about 6 times fewer pixels than
640 x 480, so VOCUS2 takes a few ms) and it comes with heights. The heights let ``saliency_input``
neutralise the table: table cells (low, and coloured like the table: ``foreground_mask``) take the
product's typical colour (the median of object cells, the product being the majority), so contrast
against the table, which every product item has, is removed and what remains is contrast against the
product: the odd one out. On the camera image a dark stone among bright mushrooms on a dark belt is
hardly more salient than any mushroom. ``SaliencySpec.source = "image"`` runs VOCUS2 on the camera image
anyway and resamples it into the grid (see ``attention``); the impurity test's threshold was measured
for the heightmap source.

Saliency always has a maximum, so ``salient_regions`` only proposes regions; ``attention`` decides which
are impurities (contrast against the other object cells, feature contrast, size, taught appearance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from sorter.geometry import WorkspaceGrid
from sorter.perception.heightmap import Heightmaps, PerceptionError
from sorter.recipe import SaliencySpec

UNIQUENESS_LEVEL = 0.5  # local maxima above this share of the maximum count (Frintrop et al. 2015)
CENTER_BIAS_SIGMA = 0.25  # of the image side, when centre bias is on
DOWNSAMPLED_BLUR_SIGMA = 6.0  # wider blurs run at half resolution (exact enough for a smooth surround)
PROPOSAL_FLOOR = 0.25  # regions are proposed only from peaks above this share of the global maximum
SEED_WINDOW = 7  # cells; a seed is the maximum of its 7x7 neighbourhood
MAX_SEEDS = 64
TABLE_MIN_SHARE = 0.05  # of the cells must be low for the table's colour to be estimated
TABLE_TOLERANCE_MADS = 6.0
TABLE_TOLERANCE_MIN = 12.0  # RGB units
MEDIAN_SAMPLES = 4000
EXTENT_LEVEL = 0.5  # of the peak: how far a region's extent (its object's size) is grown
FILL_SIGMA = 4.0  # cells, normalised-convolution fill of unmeasured cells before saliency
_KERNEL3 = np.ones((3, 3), np.uint8)
CONTRAST_EPS = 1e-5  # opponent units (1/400 of a grey level): below it a map is float noise, not contrast


@dataclass(frozen=True)
class SaliencyMaps:
    """Un-normalised VOCUS2 output: the fused ``saliency`` and ``features``, the strongest of the six
    scale-fused contrast maps (L, a, b on-off and off-on) per pixel, in opponent-colour units."""

    saliency: np.ndarray
    features: np.ndarray


def vocus2(image_rgb: np.ndarray, spec: SaliencySpec, *, normalize: bool = True) -> np.ndarray:
    """VOCUS2 saliency map of an RGB image (uint8 or float in [0, 1]): float32, same HxW.

    With ``normalize`` (the default) the map is min-max normalised to [0, 1] and a uniform image gives
    all zeros; without it the values are contrasts in opponent-colour units.
    """
    sal = vocus2_maps(image_rgb, spec).saliency
    return normalize_map(sal) if normalize else sal


def vocus2_maps(image_rgb: np.ndarray, spec: SaliencySpec) -> SaliencyMaps:
    """VOCUS2's fused map and its strongest feature contrast (see ``SaliencyMaps``), un-normalised.

    Scales and layers are fused by the arithmetic mean (VOCUS2's default feature fusion), polarities
    and channels by ``spec.fusion`` (its conspicuity fusion): the feature maps then keep one unit,
    opponent-colour contrast, whatever the recipe's fusion, and ``features`` can be compared with a
    fixed threshold.
    """
    opp = opponent_colors(image_rgb)
    h, w = opp.shape[:2]
    on_off, off_on = _contrast_maps(opp, spec, (w, h))
    channels = [fuse([on_off[..., c], off_on[..., c]], spec.fusion) for c in range(3)]
    sal = fuse(channels, spec.fusion)
    if spec.center_bias:
        sal = sal * _center_bias(h, w)
    features = np.maximum(on_off.max(axis=2), off_on.max(axis=2))
    return SaliencyMaps(sal.astype(np.float32), features.astype(np.float32))


def opponent_colors(image_rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float32 opponent channels L, a, b of an RGB image."""
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 2 or img.shape[1] < 2:
        raise PerceptionError(f"saliency needs an HxWx3 RGB image of at least 2x2, got shape {img.shape}")
    rgb = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.stack([(r + g + b) / 3.0, r - g, b - (r + g) / 2.0], axis=-1)


def _contrast_maps(opp: np.ndarray, spec: SaliencySpec, size: tuple[int, int]):
    """On-off and off-on maps (HxWx3, one plane per channel), averaged over layers and scales.

    Each layer's maps are summed at the layer's size and the sums are folded coarse to fine with one
    resize per layer.
    """
    n = spec.scales_per_layer
    surround_extra = math.sqrt(max(spec.surround_sigma ** 2 - spec.center_sigma ** 2, 0.0))
    sums_on, sums_off = [], []
    base = opp
    for _ in range(spec.layers):
        if sums_on and min(base.shape[:2]) < 4:
            break
        on_sum = off_sum = None
        centre = base
        for s in range(n):
            factor = 2.0 ** (s / n)
            centre = _blur(base, spec.center_sigma * factor)
            diff = centre - _blur(centre, surround_extra * factor)
            on, off = np.maximum(diff, 0.0), np.maximum(-diff, 0.0)
            on_sum = on if on_sum is None else on_sum + on
            off_sum = off if off_sum is None else off_sum + off
        sums_on.append(on_sum)
        sums_off.append(off_sum)
        base = cv2.resize(centre, (max(base.shape[1] // 2, 1), max(base.shape[0] // 2, 1)),
                          interpolation=cv2.INTER_NEAREST)
    count = float(len(sums_on) * n)
    return _fold(sums_on, size) / count, _fold(sums_off, size) / count


def _fold(sums: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Sum per-layer maps, coarsest first, resizing the running total up one layer at a time."""
    total = sums[-1]
    for layer in reversed(sums[:-1]):
        total = layer + _resize(total, (layer.shape[1], layer.shape[0]))
    return _resize(total, size)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    h, w = img.shape[:2]
    if sigma > DOWNSAMPLED_BLUR_SIGMA and min(h, w) >= 32:
        small = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), math.sqrt(max(sigma ** 2 - 0.25, 0.0)) / 2.0,
                                 borderType=cv2.BORDER_REFLECT)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == size:
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)


def fuse(maps: list[np.ndarray], method: str) -> np.ndarray:
    """Fuse same-size maps by 'mean', 'max' or 'uniqueness' (weighted mean, weight 1/sqrt(#peaks))."""
    if method == "max":
        return np.max(maps, axis=0).astype(np.float32)
    if method == "mean":
        return np.mean(maps, axis=0).astype(np.float32)
    if method != "uniqueness":
        raise PerceptionError(f"unknown saliency fusion '{method}'; use mean, max or uniqueness")
    weights = [uniqueness_weight(m) for m in maps]
    total = sum(weights)
    if total <= 0:
        return np.zeros_like(maps[0], dtype=np.float32)
    return (sum(w * m for w, m in zip(weights, maps, strict=True)) / total).astype(np.float32)


def uniqueness_weight(m: np.ndarray) -> float:
    """1/sqrt(number of local maxima above half the maximum); 0 for a map without contrast."""
    peak = float(m.max())
    if peak <= CONTRAST_EPS:
        return 0.0
    local_max = cv2.compare(m, cv2.dilate(m, _KERNEL3), cv2.CMP_GE)
    local_max &= cv2.compare(m, UNIQUENESS_LEVEL * peak, cv2.CMP_GE)
    peaks = cv2.connectedComponents(local_max, connectivity=8)[0] - 1  # a plateau is one peak
    return 1.0 / math.sqrt(max(peaks, 1))


def normalize_map(m: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1]; a map without contrast (range under CONTRAST_EPS) becomes zeros."""
    lo, hi = float(m.min()), float(m.max())
    if hi - lo <= CONTRAST_EPS:
        return np.zeros(m.shape, np.float32)
    return ((m - lo) / (hi - lo)).astype(np.float32)


def _center_bias(h: int, w: int) -> np.ndarray:
    y = (np.arange(h) - (h - 1) / 2.0) / (CENTER_BIAS_SIGMA * h)
    x = (np.arange(w) - (w - 1) / 2.0) / (CENTER_BIAS_SIGMA * w)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)


def foreground_mask(heightmaps: Heightmaps, min_point_height: float) -> np.ndarray:
    """Cells holding something: higher than ``min_point_height``, or low but unlike the table's colour.

    The colour test keeps flat things (a slate lying flat, a stone sunk between items) that a height
    threshold alone would paint over as table. The table's colour is the median of the low cells; a low
    cell is foreground when its RGB distance from it exceeds the median distance by
    ``TABLE_TOLERANCE_MADS`` robust deviations (at least ``TABLE_TOLERANCE_MIN``).
    """
    high = heightmaps.valid & (heightmaps.height > min_point_height)
    low = heightmaps.valid & ~high
    if low.sum() < TABLE_MIN_SHARE * low.size:
        return high
    color = heightmaps.color.astype(np.float32)
    table = np.median(_sample(color[low]), axis=0)
    dist = np.linalg.norm(color - table, axis=-1)
    d = _sample(dist[low])
    med = float(np.median(d))
    tol = max(med + TABLE_TOLERANCE_MADS * 1.4826 * float(np.median(np.abs(d - med))), TABLE_TOLERANCE_MIN)
    return high | (low & (dist > tol))


def _sample(values: np.ndarray) -> np.ndarray:
    """Every n-th of many values: medians of a few thousand cells are as good and much cheaper."""
    step = max(1, len(values) // MEDIAN_SAMPLES)
    return values[::step]


def saliency_input(heightmaps: Heightmaps, object_mask: np.ndarray) -> np.ndarray:
    """The colour heightmap prepared for saliency: gaps filled, the table painted in the product's colour.

    Unmeasured cells take the normalised-convolution average of measured neighbours; table cells (not in
    ``object_mask``) take the median colour of object cells. With no object cells the map is uniform.
    """
    valid = heightmaps.valid
    color = heightmaps.color.astype(np.float32)
    if not valid.all():
        color = _fill_unmeasured(color, valid)
    if not object_mask.any():
        return np.full(color.shape, 128, np.uint8)
    product = np.median(_sample(color[object_mask]), axis=0)
    out = np.where(object_mask[..., None], color, product[None, None, :])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _fill_unmeasured(color: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if not valid.any():
        return np.full(color.shape, 128.0, np.float32)
    v = valid.astype(np.float32)
    num = cv2.GaussianBlur(color * v[..., None], (0, 0), FILL_SIGMA)
    den = cv2.GaussianBlur(v, (0, 0), FILL_SIGMA)[..., None]
    mean_color = color[valid].mean(axis=0)
    filled = np.where(den > 1e-3, num / np.maximum(den, 1e-3), mean_color)
    return np.where(valid[..., None], color, filled)


@dataclass(frozen=True)
class Region:
    """A salient region grown from a saliency peak; ``score`` ranks regions (higher first).

    ``saliency`` is the normalised peak, ``contrast`` the peak over the mean saliency elsewhere,
    ``raw_peak`` the strongest feature contrast inside (``SaliencyMaps.features``), ``novelty`` the
    taught appearance model's score (None without one) and ``accepted`` whether attention judged it an
    impurity.
    """

    mask: np.ndarray
    peak: tuple[int, int]
    score: float
    area_m2: float
    center_xy: tuple[float, float] | None = None
    center_rc: tuple[float, float] = (0.0, 0.0)
    saliency: float = 0.0
    contrast: float = 0.0
    raw_peak: float = 0.0
    novelty: float | None = None
    extent_m2: float = 0.0
    accepted: bool = False
    reason: str = ""


def salient_regions(saliency: np.ndarray, spec: SaliencySpec, *, cell_area: float = 1.0,
                    grid: WorkspaceGrid | None = None, features: np.ndarray | None = None,
                    allowed: np.ndarray | None = None) -> list[Region]:
    """Regions grown from saliency peaks while S >= region_threshold * peak, best first.

    Seeds are local maxima (``SEED_WINDOW`` cells) above ``PROPOSAL_FLOOR`` of the global maximum, taken
    in decreasing order; a seed whose grown region touches an earlier region is a shoulder of that peak
    and is skipped. Stops at ``spec.max_regions``. ``allowed`` restricts seeds, growth and the
    "elsewhere" of ``Region.contrast`` (e.g. to object cells); ``grid`` adds metric centres and
    ``cell_area`` (m^2) metric areas; the highest ``features`` value inside a region becomes its
    ``Region.raw_peak``. ``Region.extent_m2`` is the area of the same peak grown down to
    ``EXTENT_LEVEL`` of it (earlier regions excluded): the salient thing's size, which the region's core
    at ``region_threshold`` underestimates.
    """
    sal = np.asarray(saliency, np.float32)
    if sal.ndim != 2:
        raise PerceptionError(f"saliency must be a 2-D map, got shape {sal.shape}")
    work = sal if allowed is None else np.where(allowed, sal, 0.0).astype(np.float32)
    regions: list[Region] = []
    taken = np.zeros(sal.shape, bool)
    for r, c in _seeds(work):
        if len(regions) >= spec.max_regions:
            break
        if taken[r, c]:
            continue
        peak = float(work[r, c])
        mask = grow_region(work, (r, c), spec.region_threshold * peak)
        if (mask & taken).any():
            continue
        extent = grow_region(np.where(taken, 0.0, work), (r, c), EXTENT_LEVEL * peak) | mask
        taken |= mask
        region = _make_region(mask, (r, c), peak, features, cell_area, grid)
        regions.append(replace(region, extent_m2=float(extent.sum() * cell_area)))
    rest = ~taken if allowed is None else allowed & ~taken
    return [_with_contrast(reg, sal, rest) for reg in regions]


def _seeds(work: np.ndarray) -> list[tuple[int, int]]:
    """Local maxima above the proposal floor, highest first (at most ``MAX_SEEDS``)."""
    top = float(work.max()) if work.size else 0.0
    if top <= 1e-6:
        return []
    kernel = np.ones((SEED_WINDOW, SEED_WINDOW), np.uint8)
    peaks = (work >= cv2.dilate(work, kernel)) & (work >= PROPOSAL_FLOOR * top)
    rows, cols = np.nonzero(peaks)
    order = np.argsort(-work[rows, cols], kind="stable")[:MAX_SEEDS]
    return [(int(rows[i]), int(cols[i])) for i in order]


def grow_region(saliency: np.ndarray, seed: tuple[int, int], level: float) -> np.ndarray:
    """Cells 4-connected to ``seed`` whose saliency is at least ``level``."""
    h, w = saliency.shape
    mask = np.zeros((h + 2, w + 2), np.uint8)
    peak = float(saliency[seed])
    flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    cv2.floodFill(saliency.astype(np.float32, copy=True), mask, (seed[1], seed[0]), 0,
                  max(peak - level, 0.0), float("inf"), flags)
    return mask[1:-1, 1:-1].astype(bool)


def _make_region(mask, peak_rc, peak, features, cell_area, grid) -> Region:
    rows, cols = np.nonzero(mask)
    center_rc = (float(rows.mean()), float(cols.mean()))
    center_xy = None
    if grid is not None:
        x, y = grid.center_of(center_rc[0], center_rc[1])
        center_xy = (float(x), float(y))
    raw_peak = float(features[mask].max()) if features is not None else 0.0
    return Region(mask=mask, peak=peak_rc, score=peak, area_m2=float(rows.size * cell_area),
                  center_xy=center_xy, center_rc=center_rc, saliency=peak, raw_peak=raw_peak)


def _with_contrast(region: Region, sal: np.ndarray, rest: np.ndarray) -> Region:
    """Peak over the mean saliency of the ``rest`` cells (allowed, outside every proposed region)."""
    vals = sal[rest]
    mean = float(vals.mean()) if vals.size else 0.0
    return replace(region, contrast=region.saliency / max(mean, 1e-6))
