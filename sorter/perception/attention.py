"""Attention (paper 2, Algorithm 1): a visible impurity, else the densest cluster, else a clean batch.

1. Saliency: VOCUS2 on the colour heightmap with the table painted in the product's colour (see
   ``saliency``), regions grown from its peaks over object cells.
2. "Impurity present": saliency always has a maximum, so a region counts only when it stands out:
   - without a taught appearance model: its peak is at least ``min_peak_ratio`` times the mean saliency
     of the other object cells, its strongest feature contrast (``SaliencyMaps.features``: the largest
     of the L, a, b on-off/off-on contrasts, opponent-colour units) is at least
     ``MIN_FEATURE_CONTRAST`` (a clean product's own shading, texture and colour spread stay below it, an
     impurity's colour or brightness step does not) and its extent (the peak grown down to half its
     height) covers ``min_region_area``; where the recipe sets ``clear_peak_ratio``, a peak at least that
     many times the mean needs no feature contrast (the sliver of a half-hidden impurity: a strong peak,
     too small for much centre-surround contrast);
   - with one: it must look unlike the product (novelty >= ``appearance.threshold``), which vetoes
     salient product (a rare colour variant, a strongly lit item) and, because every novel area of
     object cells becomes a region too, finds impurities that saliency ranked below another or merged
     away. A region clearly unlike the product (``CLEAR_NOVELTY`` units above the threshold) needs no
     saliency; one only slightly unfamiliar (a shaded face of a stacked item the teaching frames never
     showed) must also pass the feature-contrast test.
   Accepted regions are ranked by ``(1 - weight) * saliency + weight * sigmoid(novelty)``.
3. With no accepted region, DBSCAN clusters (``occlusion``): the largest, when it can hide an impurity
   (or with ``occlusion.search: any`` the largest of those that can), gives cluster mode with an all-one
   mask over its crop; otherwise the batch is clean.
4. With a taught model in ``guard`` use (``appearance.use``), steps 1 to 3 run on saliency alone, and
   whenever they end without a target (a cluster to search or a clean batch) the model looks at the
   scene: an area of object cells clearly unlike the product (``CLEAR_NOVELTY`` units above the
   threshold, ``GUARD_AREA_SHARE`` of ``min_region_area`` or more) is searched in cluster mode, its crop
   centred on that area, which the attention carries as ``sighting``. It is most often the sliver of a
   half-uncovered impurity, too small for saliency (a side face the tilted camera sees falls on a few
   height-map cells), that a grasp would miss (the item still lying on it comes up instead) and a push
   next to it uncovers; a guard never turns a sliver into a target. The policy pushes around the
   sighting as around a target (``sorter.policy.agent.region_and_mask``) instead of anywhere in the
   cluster. With ``appearance.confirm``, before a batch is declared clean, a region saliency proposed
   whole and rejected only for its feature contrast becomes the target when the model finds it clearly
   unlike the product (a stone in the open that steps too little from pale caps; ``_confirmed``).

Crops are ``CROP_CELLS`` square and always inside the grid: near a border the crop shifts inwards instead
of padding, so every crop cell is real data and ``crop_center_rc`` (the target or cluster centre) is then
off the crop's middle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from sorter.errors import ModelFileError
from sorter.geometry import CROP_CELLS
from sorter.perception.appearance import AppearanceModel, novel_regions, region_novelty
from sorter.perception.heightmap import Heightmaps, PerceptionError, sample_image
from sorter.perception.occlusion import Cluster, find_clusters
from sorter.perception.saliency import (
    Region,
    SaliencyMaps,
    foreground_mask,
    normalize_map,
    saliency_input,
    salient_regions,
    vocus2_maps,
)
from sorter.recipe import PerceptionSpec, Recipe, SaliencySpec

CLEAR_NOVELTY = 3.0  # novelty units above the threshold at which appearance alone decides
GUARD_AREA_SHARE = 0.25  # of saliency's min_region_area: the smallest unfamiliar area a guard searches
# (slivers showing 70 to 140 camera pixels give 24 to 40 cells above the clear level, under the 50 cells
# of toy-blocks' min_region_area; clean product never reaches the clear level at all)
MIN_FEATURE_CONTRAST = 0.048  # opponent-colour units; between clean product (<= 0.042) and impurities
# (>= 0.056) over the four shipped recipes' simulated scenes, seeds 1-49 (see module doc)


@dataclass(frozen=True)
class SaliencyMethod:
    """A saliency algorithm for attention: ``compute(image_rgb, spec)`` returns un-normalised maps;
    a region needs a feature contrast of ``min_raw_contrast`` (0 where the maps have no unit)."""

    name: str
    compute: Callable[[np.ndarray, SaliencySpec], SaliencyMaps]
    min_raw_contrast: float


VOCUS2 = SaliencyMethod("vocus2", vocus2_maps, MIN_FEATURE_CONTRAST)


@dataclass(frozen=True)
class Crop:
    """A ``size`` x ``size`` window of the heightmap grid starting at (row0, col0), inside the grid."""

    row0: int
    col0: int
    size: int = CROP_CELLS

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row0, self.row0 + self.size), slice(self.col0, self.col0 + self.size)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """The crop of an HxW(xC) array on the grid."""
        return array[self.slices]

    def contains(self, row: float, col: float) -> bool:
        return self.row0 <= row < self.row0 + self.size and self.col0 <= col < self.col0 + self.size


def crop_around(center_rc: tuple[float, float], cells: int, size: int = CROP_CELLS) -> Crop:
    """The crop centred on ``center_rc``, shifted inwards where it would leave a ``cells`` grid."""
    size = min(size, cells)
    r0 = int(round(center_rc[0] - size / 2))
    c0 = int(round(center_rc[1] - size / 2))
    return Crop(min(max(r0, 0), cells - size), min(max(c0, 0), cells - size), size)


@dataclass(frozen=True)
class Attention:
    """What perception tells the policy: where to act and why.

    ``target_mask`` is HxW bool: the target region in target mode, all-one over the crop in cluster
    mode, all-zero when clean. ``regions`` are every proposed region, accepted ones first.
    """

    mode: Literal["target", "cluster", "clean"]
    reason: str
    target_mask: np.ndarray
    crop_center_rc: tuple[int, int] | None
    crop_center_xy: tuple[float, float] | None
    crop: Crop | None
    regions: list[Region]
    cluster: Cluster | None
    saliency: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)
    novelty: np.ndarray | None = None
    appearance_used: bool = False
    sighting: np.ndarray | None = None  # cluster mode: the area a guard saw unlike the product (step 4)

    @property
    def target(self) -> Region | None:
        return self.regions[0] if self.mode == "target" else None

    @property
    def impurities(self) -> list[Region]:
        """Every region judged an impurity, best first."""
        return [r for r in self.regions if r.accepted]


class Attender:
    """Runs attention for one recipe; ``appearance`` is the taught product look, or None.

    ``method`` swaps the saliency algorithm (the evaluation's OpenCV baselines); VOCUS2 by default.
    """

    def __init__(self, recipe: Recipe, appearance: AppearanceModel | None = None,
                 method: SaliencyMethod = VOCUS2):
        self.spec: PerceptionSpec = recipe.perception
        self.appearance = appearance if appearance is not None and appearance.fitted else None
        self.method = method

    @property
    def fused(self) -> bool:
        """Whether the taught model takes part in every verdict (``fuse``), not only in ``guard``."""
        return self.appearance is not None and self.spec.appearance.use == "fuse"

    @property
    def note(self) -> str:
        """One line for run logs and the GUI on how impurities are decided."""
        if self.appearance is None:
            return ("no taught appearance model: saliency alone decides (run `sorter teach` and name the "
                    "file in the recipe's perception.appearance.model)")
        if not self.fused:
            confirms = (" and confirms a salient region under the feature floor that looks unlike it"
                        if self.spec.appearance.confirm else "")
            return ("saliency decides; the taught appearance model guards against declaring a batch "
                    f"clean while something unlike the product shows{confirms}, and points searches at it")
        return "saliency fused with the taught appearance model"

    def attend(self, heightmaps: Heightmaps, frame=None) -> Attention:
        """Algorithm 1 on one set of heightmaps; ``frame`` is needed only for image-space saliency."""
        clock = _Clock()
        objects = foreground_mask(heightmaps, self.spec.occlusion.min_point_height)
        sal, features = self._saliency(heightmaps, objects, frame)
        clock.lap("saliency")
        regions = salient_regions(sal, self.spec.saliency, cell_area=heightmaps.grid.cell_size ** 2,
                                  grid=heightmaps.grid, features=features, allowed=objects)
        clock.lap("regions")
        novelty = None
        if self.fused:
            novelty = self.appearance.novelty_map(heightmaps, objects)
            regions = self._add_novel_regions(regions, novelty, sal, features, heightmaps)
            clock.lap("appearance")
        regions = self._judge(regions, novelty)
        if regions and regions[0].accepted:
            result = self._target(regions, heightmaps, sal)
        else:
            clusters = find_clusters(heightmaps, self.spec.occlusion)
            clock.lap("clusters")
            result = self._cluster_or_clean(regions, clusters, heightmaps, sal)
            if self.appearance is not None and not self.fused:  # guard
                novelty = self.appearance.novelty_map(heightmaps, objects)
                result = self._guard(result, novelty, clusters, heightmaps)
                clock.lap("appearance")
        clock.total()
        return replace(result, timings_ms=clock.laps, novelty=novelty, appearance_used=novelty is not None)

    def _saliency(self, hm: Heightmaps, objects: np.ndarray, frame) -> tuple[np.ndarray, np.ndarray]:
        """Normalised saliency and the feature-contrast map, both zero off objects."""
        spec = self.spec.saliency
        if spec.source == "image":
            if frame is None:
                raise PerceptionError("the recipe runs saliency on the camera image (saliency.source: "
                                      "image); pass the frame to attend()")
            maps = self.method.compute(frame.color, spec)
            raw, features = sample_image(hm, maps.saliency, 0.0), sample_image(hm, maps.features, 0.0)
        else:
            maps = self.method.compute(saliency_input(hm, objects), spec)
            raw, features = maps.saliency, maps.features
        if not objects.any():
            return np.zeros(objects.shape, np.float32), np.zeros(objects.shape, np.float32)
        keep = objects.astype(np.float32)
        return normalize_map(raw * keep), features * keep

    def _add_novel_regions(self, regions: list[Region], novelty: np.ndarray, sal: np.ndarray,
                           features: np.ndarray, hm: Heightmaps) -> list[Region]:
        """Score salient regions by novelty, widen each to the novel areas it touches (the whole
        unfamiliar object) and add novel areas that no salient region touches."""
        spec = self.spec
        cell_area = hm.grid.cell_size ** 2
        novel = novel_regions(novelty, spec.appearance.threshold, 1)
        scored, used = [], np.zeros(len(novel), bool)
        for r in regions:
            mask = r.mask.copy()
            for i, comp in enumerate(novel):
                if not used[i] and (comp & r.mask).any():
                    mask |= comp
                    used[i] = True
            area = float(mask.sum() * cell_area)
            center_rc, center_xy = _centre(mask, hm)
            scored.append(replace(r, mask=mask, area_m2=area, extent_m2=max(r.extent_m2, area),
                                  center_rc=center_rc, center_xy=center_xy,
                                  novelty=region_novelty(novelty, mask)))
        min_cells = max(1, int(spec.saliency.min_region_area / cell_area))
        for i, comp in enumerate(novel):
            if used[i] or comp.sum() < min_cells or len(scored) >= 2 * spec.saliency.max_regions:
                continue
            scored.append(_region_from_mask(comp, sal, features, novelty, hm))
        return scored

    def _judge(self, regions: list[Region], novelty: np.ndarray | None) -> list[Region]:
        """Mark accepted regions and rank them: accepted by fused score first, then the rest."""
        judged = [self._verdict(r, novelty is not None) for r in regions]
        return sorted(judged, key=lambda r: (not r.accepted, -r.score))

    def _verdict(self, r: Region, taught: bool) -> Region:
        sal_spec = self.spec.saliency
        size = max(r.area_m2, r.extent_m2)
        if size < sal_spec.min_region_area:
            return replace(r, accepted=False, reason=f"area {size * 1e4:.1f} cm^2 under "
                                                     f"{sal_spec.min_region_area * 1e4:.1f} cm^2")
        if taught:
            return self._taught_verdict(r)
        ok_ratio = r.contrast >= sal_spec.min_peak_ratio
        floor = self._feature_floor()
        ok_raw = r.raw_peak >= floor
        why = (f"contrast {r.contrast:.1f}x {'>=' if ok_ratio else '<'} {sal_spec.min_peak_ratio:.1f}x, "
               f"feature contrast {r.raw_peak:.3f} {'>=' if ok_raw else '<'} {floor:.3f}")
        clear = sal_spec.clear_peak_ratio
        if ok_ratio and not ok_raw and clear is not None and r.contrast >= clear:
            return replace(r, accepted=True, score=r.saliency,
                           reason=f"contrast {r.contrast:.1f}x >= {clear:.1f}x (clear peak), feature "
                                  f"contrast {r.raw_peak:.3f} < {floor:.3f}")
        return replace(r, accepted=ok_ratio and ok_raw, score=r.saliency, reason=why)

    def _feature_floor(self) -> float:
        """The least feature contrast of an impurity: the recipe's, else the method's own (a method
        whose maps have no unit has none, whatever the recipe says)."""
        own = self.method.min_raw_contrast
        wanted = self.spec.saliency.min_feature_contrast
        return own if wanted is None or own == 0 else wanted

    def _taught_verdict(self, r: Region) -> Region:
        """Unlike the product, and either clearly so or also standing out in saliency."""
        app, floor = self.spec.appearance, self._feature_floor()
        nov = -math.inf if r.novelty is None else r.novelty
        score = (1 - app.weight) * r.saliency + app.weight * _sigmoid(nov)
        if nov < app.threshold:
            return replace(r, accepted=False, score=score,
                           reason=f"looks like the product (novelty {nov:.1f} < {app.threshold:.1f})")
        if nov >= app.threshold + CLEAR_NOVELTY or r.raw_peak >= floor:
            return replace(r, accepted=True, score=score,
                           reason=f"novelty {nov:.1f}, feature contrast {r.raw_peak:.3f}")
        return replace(r, accepted=False, score=score,
                       reason=f"slightly unfamiliar (novelty {nov:.1f}) but not salient (feature contrast "
                              f"{r.raw_peak:.3f} < {floor:.3f})")

    def _target(self, regions: list[Region], hm: Heightmaps, sal: np.ndarray) -> Attention:
        top = regions[0]
        center = (int(round(top.center_rc[0])), int(round(top.center_rc[1])))
        n_acc = sum(r.accepted for r in regions)
        reason = (f"impurity at ({top.center_xy[0]:.3f}, {top.center_xy[1]:.3f}) m: {top.reason}"
                  + (f"; {n_acc - 1} more impurities" if n_acc > 1 else ""))
        return Attention("target", reason, top.mask.copy(), center, top.center_xy,
                         crop_around(center, hm.grid.cells), regions, None, sal)

    def _cluster_or_clean(self, regions: list[Region], clusters: list[Cluster], hm: Heightmaps,
                          sal: np.ndarray) -> Attention:
        occ = self.spec.occlusion
        best = regions[0].reason if regions else "no salient object"
        hiding = [c for c in (clusters if occ.search == "any" else clusters[:1]) if c.can_hide(occ)]
        if hiding:
            c = hiding[0]
            reason = (f"no visible impurity ({best}); largest cluster {c.area_m2 * 1e4:.0f} cm^2, "
                      f"{c.max_height * 1e3:.0f} mm high may hide one")
            return _search(c.center_rc, c.center_xy, c, reason, regions, sal, hm)
        if clusters:
            c = clusters[0]
            detail = (f"largest cluster {c.area_m2 * 1e4:.0f} cm^2, {c.max_height * 1e3:.0f} mm high, is "
                      f"under {occ.min_cluster_area * 1e4:.0f} cm^2 or {occ.min_cluster_height * 1e3:.0f} mm")
        else:
            detail = "nothing on the table"
        return Attention("clean", f"clean: no visible impurity ({best}); {detail}",
                         np.zeros(hm.shape, bool), None, None, None, regions,
                         clusters[0] if clusters else None, sal)

    def _guard(self, verdict: Attention, novelty: np.ndarray, clusters: list[Cluster],
               hm: Heightmaps) -> Attention:
        """``verdict`` (a clean batch or a cluster search) unless an area clearly unlike the product
        shows: then cluster mode centred on it, with the area as ``sighting`` (step 4 of the module doc).
        The cluster guarded against the border is the one holding the area."""
        app, cell_area = self.spec.appearance, hm.grid.cell_size ** 2
        confirmed = self._confirmed(verdict.regions, novelty) if app.confirm and verdict.mode == "clean" \
            else None
        if confirmed is not None:
            return self._target(confirmed, hm, verdict.saliency)
        min_cells = max(1, int(GUARD_AREA_SHARE * self.spec.saliency.min_region_area / cell_area))
        novel = novel_regions(novelty, app.threshold + CLEAR_NOVELTY, min_cells)
        if not novel:
            if verdict.mode != "clean":
                return verdict
            return replace(verdict, reason=f"{verdict.reason}; nothing looks unlike the product")
        area_mask = novel[0]
        center_rc, center_xy = _centre(area_mask, hm)
        holder = next((c for c in clusters if (c.mask & area_mask).any()), None)
        if holder is None:
            height = np.nan_to_num(np.asarray(hm.height, np.float32), nan=0.0)
            holder = Cluster(area_mask, center_rc, center_xy, float(area_mask.sum() * cell_area),
                             float(height[area_mask].max()))
        reason = (f"no salient impurity, but {area_mask.sum() * cell_area * 1e4:.1f} cm^2 at "
                  f"({center_xy[0]:.3f}, {center_xy[1]:.3f}) m looks unlike the product (novelty "
                  f"{region_novelty(novelty, area_mask):.1f}): searching there")
        search = _search(center_rc, center_xy, holder, reason, verdict.regions, verdict.saliency, hm)
        return replace(search, sighting=area_mask)

    def _confirmed(self, regions: list[Region], novelty: np.ndarray) -> list[Region] | None:
        """``regions`` with the first one saliency proposed whole (its peak ratio and area met) and
        rejected only for its feature contrast that looks clearly unlike the product accepted and put
        first; None when there is none (``appearance.confirm``; asked only before a clean verdict).

        Why: a grey stone in the open on pale mushroom caps can step only a little from them (traced:
        0.038 to 0.045 against the recipe's 0.045 floor), and the batch was declared clean with it in
        view; the guard's search only pushes around it. Not in a heap search: there such a region is
        mostly a stone half under a cap, and a grasp at it brings up the cap (traced), where a push
        uncovers the stone. A sliver stays a search too: it is under the area test."""
        spec, floor = self.spec, self._feature_floor()
        for i, r in enumerate(regions):
            whole = max(r.area_m2, r.extent_m2) >= spec.saliency.min_region_area
            if not whole or r.contrast < spec.saliency.min_peak_ratio or r.raw_peak >= floor:
                continue
            nov = region_novelty(novelty, r.mask)
            if nov >= spec.appearance.threshold + CLEAR_NOVELTY:
                reason = (f"contrast {r.contrast:.1f}x, feature contrast {r.raw_peak:.3f} < {floor:.3f}, "
                          f"confirmed by the taught look (novelty {nov:.1f})")
                return [replace(r, accepted=True, novelty=nov, reason=reason), *regions[:i], *regions[i + 1:]]
        return None


def _search(center_rc: tuple[float, float], center_xy: tuple[float, float], cluster: Cluster, reason: str,
            regions: list[Region], sal: np.ndarray, hm: Heightmaps) -> Attention:
    """Cluster mode: the crop centred on ``center_rc`` with Algorithm 1's all-one mask over it."""
    center = (int(round(center_rc[0])), int(round(center_rc[1])))
    crop = crop_around(center, hm.grid.cells)
    mask = np.zeros(hm.shape, bool)
    mask[crop.slices] = True
    return Attention("cluster", reason, mask, center, center_xy, crop, regions, cluster, sal)


def _region_from_mask(mask: np.ndarray, sal: np.ndarray, features: np.ndarray, novelty: np.ndarray,
                      hm: Heightmaps) -> Region:
    rows, cols = np.nonzero(mask)
    nov = np.nan_to_num(novelty[rows, cols], nan=-np.inf)
    i = int(np.argmax(nov))
    center_rc, center_xy = _centre(mask, hm)
    s = float(sal[rows, cols].max())
    area = float(rows.size * hm.grid.cell_size ** 2)
    return Region(mask=mask, peak=(int(rows[i]), int(cols[i])), score=s, area_m2=area,
                  center_xy=center_xy, center_rc=center_rc, saliency=s, extent_m2=area,
                  raw_peak=float(features[rows, cols].max()), novelty=float(nov[i]))


def _centre(mask: np.ndarray, hm: Heightmaps) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centroid of a mask in cells and in metres."""
    rows, cols = np.nonzero(mask)
    center_rc = (float(rows.mean()), float(cols.mean()))
    x, y = hm.grid.center_of(*center_rc)
    return center_rc, (float(x), float(y))


def _sigmoid(x: float) -> float:
    if x == -math.inf:
        return 0.0
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


class _Clock:
    """Milliseconds per stage (wall clock: these are processing times, not simulated time)."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = (now - self.last) * 1e3
        self.last = now

    def total(self) -> None:
        self.laps["total"] = (time.perf_counter() - self.start) * 1e3


def load_attender(recipe: Recipe) -> Attender:
    """The recipe's attender with its taught appearance model when the recipe names one.

    A named but missing or unreadable model raises ModelFileError naming the file and `sorter teach`.
    """
    name = recipe.perception.appearance.model
    if not name:
        return Attender(recipe)
    path = recipe.resolve(name)
    try:
        model = AppearanceModel.load(path, recipe.path)
    except ModelFileError as exc:
        raise ModelFileError(f"{exc} (the recipe's perception.appearance.model names it)") from None
    return Attender(recipe, model)
