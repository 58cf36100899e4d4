"""Perception against simulator ground truth (``sorter eval perception``) and teaching (``sorter teach``).

Scenes come from the simulated cell; each is scored with pure functions of the attention result and the
ground truth brought into the heightmap grid (``SceneTruth``):

- ``top1_hit``: over scenes with a visible impurity, the share whose top reported region lies on an
  impurity's visible cells (holds the region's peak, within ``HIT_TOLERANCE`` cells, or half its cells);
- ``recall_topk``: the share of visible impurities that some accepted region lies on;
- ``false_alarm``: the share of ``clean`` scenes where attention reports a target;
- ``clean_searched``: the share of ``clean`` scenes not declared clean (a cluster that may hide an
  impurity, or a taught model's guard searching an unfamiliar area): a clean batch that costs pushes;
- ``cluster_hit``: over ``invisible`` scenes with a hidden impurity, the share where one lies in the crop;
- ``wrong_target``: the share of scenes whose reported target lies on no impurity (a false target where
  the scenario has impurities: in heaps, a shaded side of product can pass for a dark impurity);
- ``msr_targ`` (max saliency on targets over max on distractors) and ``gsi`` ((mean on targets - mean on
  distractors) / their sum), the odd-one-out metrics of the P3/O3 benchmark, on the attention's map;
- medians of the attention time (wall clock, and the thread's CPU time, which a busy machine inflates
  less) and of each stage.

An impurity is visible when at most ``VISIBLE_MAX_OCCLUSION`` of it is hidden (simulator amodal masks).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from sorter.perception.appearance import AppearanceModel
from sorter.perception.attention import VOCUS2, Attender, Attention, SaliencyMethod
from sorter.perception.heightmap import Heightmaps, compute_heightmaps, sample_image
from sorter.perception.saliency import SaliencyMaps
from sorter.recipe import Recipe, SaliencySpec

VISIBLE_MAX_OCCLUSION = 0.5
HIT_TOLERANCE = 2  # cells (4 mm): resampling the camera mask into the grid moves edges by a cell or two
HIT_SHARE = 0.5


def _spectral(image: np.ndarray, spec: SaliencySpec) -> SaliencyMaps:
    ok, sal = cv2.saliency.StaticSaliencySpectralResidual_create().computeSaliency(image[..., ::-1])
    return _as_maps(ok, sal, image)


def _finegrained(image: np.ndarray, spec: SaliencySpec) -> SaliencyMaps:
    ok, sal = cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(image[..., ::-1].copy())
    return _as_maps(ok, sal, image)


def _as_maps(ok: bool, sal: np.ndarray, image: np.ndarray) -> SaliencyMaps:
    if not ok or sal is None:
        sal = np.zeros(image.shape[:2], np.float32)
    sal = np.asarray(sal, np.float32)
    sal = sal / 255.0 if sal.max() > 1.0 else sal
    return SaliencyMaps(sal, sal)


BASELINES = {
    # OpenCV contrib saliency on the same prepared heightmap image; normalised maps, no absolute unit
    "spectral": SaliencyMethod("spectral", _spectral, 0.0),
    "finegrained": SaliencyMethod("finegrained", _finegrained, 0.0),
}


@dataclass(frozen=True)
class SceneTruth:
    """Ground truth of one frame in the heightmap grid."""

    ids: np.ndarray  # HxW int32 object id per cell (0 table or unknown)
    visible_impurities: tuple[int, ...]
    impurity_ids: tuple[int, ...]
    product_ids: tuple[int, ...]
    hidden_xy: tuple[tuple[float, float], ...]  # impurities in the workspace that are not visible


@dataclass(frozen=True)
class Capture:
    """One simulated scene: its heightmaps, the heightmap time and the ground truth."""

    scenario: str
    seed: int
    heightmaps: Heightmaps
    heightmap_ms: float
    truth: SceneTruth


def capture_scenes(recipe: Recipe, scenario: str, seeds: Iterable[int],
                   progress: Callable[[str], None] | None = None) -> list[Capture]:
    """Reset the simulated cell to each seed, read a frame, build heightmaps and the grid truth."""
    from sorter.cell.sim.cell import SimCell

    cell = SimCell(recipe)
    grid = recipe.workspace.grid()
    out = []
    for seed in seeds:
        cell.reset(scenario, seed)
        frame = cell.camera.read()
        start = time.perf_counter()
        hm = compute_heightmaps(frame, cell.camera_pose, grid)
        ms = (time.perf_counter() - start) * 1e3
        out.append(Capture(scenario, seed, hm, ms, scene_truth(cell, hm)))
        if progress is not None:
            progress(f"{scenario} seed {seed}")
    return out


def scene_truth(cell, hm: Heightmaps) -> SceneTruth:
    """Visible ids in the grid and which impurities are visible or hidden (simulated cell)."""
    ids = sample_image(hm, cell.truth.visible_mask(), 0).astype(np.int32)
    states = [s for s in cell.truth.objects() if s.in_workspace]
    impurities = [s for s in states if s.is_impurity]
    visible, hidden = [], []
    for s in impurities:
        if cell.truth.occlusion_rate(s.id) <= VISIBLE_MAX_OCCLUSION:
            visible.append(s.id)
        else:
            hidden.append((float(s.position[0]), float(s.position[1])))
    return SceneTruth(ids, tuple(visible), tuple(s.id for s in impurities),
                      tuple(s.id for s in states if not s.is_impurity), tuple(hidden))


def region_on(mask: np.ndarray, peak: tuple[int, int], target: np.ndarray) -> bool:
    """True when the region's peak lies on ``target`` (dilated by HIT_TOLERANCE) or half its cells do."""
    k = 2 * HIT_TOLERANCE + 1
    near = cv2.dilate(target.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    return bool(near[peak]) or float(target[mask].mean() if mask.any() else 0.0) >= HIT_SHARE


@dataclass
class SceneScore:
    """Per-scene outcomes; None where a metric does not apply to the scene."""

    top1: bool | None = None
    wrong_target: bool = False
    found: int = 0
    visible: int = 0
    target: bool = False
    searched: bool = False
    cluster_hit: bool | None = None
    msr: float | None = None
    gsi: float | None = None
    timings: dict[str, float] = field(default_factory=dict)


def score_scene(att: Attention, truth: SceneTruth, hm: Heightmaps) -> SceneScore:
    """Score one attention result against the truth of its scene."""
    score = SceneScore(target=att.mode == "target", searched=att.mode == "cluster",
                       timings=dict(att.timings_ms))
    any_imp = np.isin(truth.ids, truth.impurity_ids)
    top = att.target
    score.wrong_target = top is not None and not region_on(top.mask, top.peak, any_imp)
    if truth.visible_impurities:
        score.top1 = top is not None and region_on(top.mask, top.peak, any_imp)
        score.visible = len(truth.visible_impurities)
        score.found = sum(any(region_on(r.mask, r.peak, truth.ids == k) for r in att.impurities)
                          for k in truth.visible_impurities)
        score.msr, score.gsi = odd_one_out(att.saliency, np.isin(truth.ids, truth.visible_impurities),
                                           np.isin(truth.ids, truth.product_ids))
    if truth.hidden_xy:
        score.cluster_hit = att.crop is not None and any(
            att.crop.contains(*_cell(hm, xy)) for xy in truth.hidden_xy)
    return score


def _cell(hm: Heightmaps, xy: tuple[float, float]) -> tuple[int, int]:
    r, c = hm.grid.cell_of(xy[0], xy[1])
    return int(r), int(c)


def odd_one_out(sal: np.ndarray, targets: np.ndarray, distractors: np.ndarray
                ) -> tuple[float | None, float | None]:
    """MSR_targ and GSI of a saliency map (None when either set of cells is empty)."""
    if not targets.any() or not distractors.any():
        return None, None
    t, d = sal[targets], sal[distractors]
    msr = float(t.max() / max(float(d.max()), 1e-6))
    total = float(t.mean() + d.mean())
    gsi = float((t.mean() - d.mean()) / total) if total > 0 else 0.0
    return msr, gsi


def summarize(scores: list[SceneScore], clean: list[SceneScore], heightmap_ms: list[float]) -> dict:
    """The evaluation's figures from scene scores (see the module docstring)."""
    top1 = [s.top1 for s in scores if s.top1 is not None]
    visible = sum(s.visible for s in scores)
    clusters = [s.cluster_hit for s in scores if s.cluster_hit is not None]
    out = {
        "scenes": len(scores), "clean_scenes": len(clean),
        "top1_hit": _mean(top1), "recall_topk": sum(s.found for s in scores) / visible if visible else None,
        "false_alarm": _mean([s.target for s in clean]), "clean_searched": _mean([s.searched for s in clean]),
        "cluster_hit": _mean(clusters),
        "wrong_target": _mean([s.wrong_target for s in scores]),
        "msr_targ": _mean([s.msr for s in scores if s.msr is not None]),
        "gsi": _mean([s.gsi for s in scores if s.gsi is not None]),
        "attention_ms_median": _median([s.timings.get("total") for s in scores + clean]),
        "attention_cpu_ms_median": _median([s.timings.get("cpu") for s in scores + clean]),
        "heightmap_ms_median": _median(heightmap_ms),
    }
    stages = sorted({k for s in scores + clean for k in s.timings if k not in ("total", "cpu")})
    out["stage_ms_median"] = {k: _median([s.timings.get(k) for s in scores + clean]) for k in stages}
    return out


def _mean(values: list) -> float | None:
    return float(np.mean(values)) if values else None


def _median(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def evaluate(recipe: Recipe, captures: list[Capture], clean: list[Capture],
             appearance: AppearanceModel | None, method: SaliencyMethod = VOCUS2) -> dict:
    """Run attention with ``method`` on captured scenes and their clean counterparts; the figures."""
    attender = Attender(recipe, appearance, method)
    scores = [_attend_and_score(attender, c) for c in captures]
    clean_scores = [_attend_and_score(attender, c) for c in clean]
    return summarize(scores, clean_scores, [c.heightmap_ms for c in captures + clean])


def _attend_and_score(attender: Attender, cap: Capture) -> SceneScore:
    """Attention on one capture, scored; adds the thread's CPU milliseconds as timing 'cpu'."""
    start = time.thread_time()
    att = attender.attend(cap.heightmaps)
    cpu = (time.thread_time() - start) * 1e3
    score = score_scene(att, cap.truth, cap.heightmaps)
    score.timings["cpu"] = cpu
    return score


def teach(recipe: Recipe, frames: int, seed: int,
          progress: Callable[[str], None] | None = None) -> AppearanceModel:
    """Fit the appearance model on ``frames`` clean simulated scenes (seeds seed, seed+2, ...)."""
    seeds = [seed + 2 * i for i in range(frames)]
    caps = capture_scenes(recipe, "clean", seeds, progress)
    model = AppearanceModel(metadata={"product": recipe.product.name, "scenario": "clean",
                                      "seeds": seeds, "recipe_sha256": recipe.sha256})
    rng = np.random.default_rng(seed)
    return model.fit([c.heightmaps for c in caps], rng, recipe.perception.occlusion.min_point_height)


def teach_from_camera(recipe: Recipe, camera, camera_pose, frames: int, interval: float, seed: int,
                      progress: Callable[[str], None] | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> AppearanceModel:
    """Fit the appearance model on ``frames`` camera frames of clean product, ``interval`` s apart.

    The engineer lays out (or lets the line carry) clean product, changing it between frames so the model
    sees the product's whole range of looks.
    """
    grid = recipe.workspace.grid()
    maps = []
    for i in range(frames):
        if i:
            sleep(interval)
        maps.append(compute_heightmaps(camera.read(timeout=recipe.camera.timeout), camera_pose, grid))
        if progress:
            progress(f"frame {i + 1}/{frames}")
    model = AppearanceModel(metadata={"product": recipe.product.name, "scenario": "camera",
                                      "frames": frames, "recipe_sha256": recipe.sha256})
    return model.fit(maps, np.random.default_rng(seed), recipe.perception.occlusion.min_point_height)
