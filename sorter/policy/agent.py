"""The push-grasp DQN agent of paper 2: methods, action selection, the learner and model files.

``PushGraspAgent`` turns an attention result and the heightmaps into a region of cells, Q maps for every
primitive and rotation, and one ``Action`` in metres. Only actions whose footprint the safety envelope
accepts and that lie inside the region (the attention crop, or the whole workspace for the
target-agnostic methods) are ever chosen. ``Learner`` trains the network from prioritized replay with the
Huber loss at the executed pixel, a target network and gamma 0.5.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from sorter.cell.base import Action, ActionKind
from sorter.cell.safety import SafetyEnvelope
from sorter.errors import ModelFileError
from sorter.geometry import CROP_CELLS, N_ROTATIONS, WorkspaceGrid, rotation_angle
from sorter.perception.attention import crop_around
from sorter.policy import affordance
from sorter.policy.base import Decision, Policy
from sorter.policy.network import (
    GRASP,
    PUSH,
    QNetwork,
    Region,
    pool_maps,
    q_at,
    q_region,
    region_offsets,
    scene_channels,
)
from sorter.policy.replay import Batch, Observation, ReplayBuffer
from sorter.policy.rewards import changed_cells

GAMMA = 0.5  # paper 2, section 3
MOMENTUM = 0.9  # paper 2, section 6.2
WEIGHT_DECAY = 2e-5  # paper 2, section 6.2
LEARNING_RATE = 1e-3  # tuned here (paper 2 used 1e-5 with pretrained DenseNet towers)
GRASP_DEPTH = 0.03  # m below the local top where the fingertips stop: pads cover a whole item's side
PUSH_HEIGHT = 0.01  # m above the table for a push starting in free space: below every item's centre
STRIP_DEPTH = 0.02  # m below the highest point of its stroke where a stripping push runs (see strip)
LOCAL_RADIUS = 2  # cells; the top under the tool is the maximum within this radius
STRIP_RADIUS = 3  # cells either side of a push stroke that its closed fingers sweep (see strip)
OCCUPIED = 0.005  # m; a cell this high holds an object (exploration samples grasps there)
REPEAT_RADIUS = 3  # cells (6 mm): a retry this close, at a neighbouring rotation, is the same action
STALL_CELLS = 1000  # cells (40 cm^2): a scene that changed less made no progress (see RepeatGuard)
SLIVER_PATIENCE = 3  # pushes in a row at a sliver of the target before its grasps are allowed again
GRASP_CONFIDENCE = 0.5  # greedy choice grasps once the grasp head predicts at least this (see greedy_index)
MODEL_FORMAT = "sorter-tcdd-dqn/1"
KINDS = (ActionKind.PUSH, ActionKind.GRASP)  # indexed by network head


@dataclass(frozen=True)
class Method:
    """One column of the benchmark: what the network sees, how it is rewarded, where it may act."""

    name: str
    model: str  # method whose trained weights it runs
    whole_scene: bool = False  # act on the whole workspace instead of the attention crop
    use_mask: bool = True  # feed the attention mask channels
    push_reward: str = "tcdd"  # "tcdd" or "change"
    change_value: float = 1.0  # push reward of a detected change
    grasp_any: bool = False  # reward grasping any object (target-agnostic VPG)
    occluded_inference: bool = True  # cluster crops when no impurity is visible
    restrict_to_mask: bool = False  # act only on the salient target (S-VPG)

    @property
    def trainable(self) -> bool:
        return self.model == self.name


METHODS = {
    "ours": Method("ours", "ours"),
    "no-tsd": Method("no-tsd", "no-tsd", whole_scene=True, use_mask=False),
    "no-oi": Method("no-oi", "ours", occluded_inference=False),
    "no-t": Method("no-t", "no-t", push_reward="change", change_value=1.0),
    "vpg": Method("vpg", "vpg", whole_scene=True, use_mask=False, push_reward="change", change_value=0.5,
                  grasp_any=True),
    "s-vpg": Method("s-vpg", "vpg", whole_scene=True, use_mask=False, restrict_to_mask=True),
}
TRAINABLE = tuple(name for name, m in METHODS.items() if m.trainable)


def method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method '{name}'; expected one of {', '.join(METHODS)}") from None


def region_and_mask(m: Method, attention, grid: WorkspaceGrid) -> tuple[Region, np.ndarray | None]:
    """Where the method acts and the target mask it feeds (None when it feeds no mask).

    Crop methods act in the attention crop; without occluded-region inference a cluster verdict is
    replaced by a crop around the saliency maximum (paper 2, 6.3.2, No-OI). Cluster crops carry the
    all-one mask of Algorithm 1, or the area a guard saw unlike the product (``Attention.sighting``):
    the policy then pushes around it as around a target (grasps stay off in cluster mode).
    """
    if m.whole_scene:
        return Region.whole(grid), None
    if attention.mode == "clean" or attention.crop is None:
        raise ValueError("attention declared the batch clean: there is nothing for the policy to act on")
    crop = attention.crop
    if attention.mode == "cluster" and not m.occluded_inference:
        peak = np.unravel_index(int(np.argmax(attention.saliency)), attention.saliency.shape)
        crop = crop_around((float(peak[0]), float(peak[1])), grid.cells, CROP_CELLS)
    region = Region(int(crop.row0), int(crop.col0), int(crop.size))
    if not m.use_mask:
        return region, None
    if attention.mode == "target":
        return region, np.asarray(attention.target_mask, bool)
    if attention.sighting is not None and m.occluded_inference:
        return region, np.asarray(attention.sighting, bool)
    mask = np.zeros((grid.cells, grid.cells), bool)
    mask[region.row0:region.row0 + region.size, region.col0:region.col0 + region.size] = True
    return region, mask


def observe(heightmaps, region: Region, mask: np.ndarray | None) -> Observation:
    """The compact observation the network and the replay buffer share."""
    rgb, height, m = pool_maps(heightmaps.color, heightmaps.height, mask)
    return Observation(rgb, height, m, region)


def scene_tensor(obs: Observation | list[Observation]) -> torch.Tensor:
    """Network input ``(N, 9, h, w)`` from one or several observations."""
    many = obs if isinstance(obs, list) else [obs]
    arr = scene_channels(np.stack([o.rgb for o in many]), np.stack([o.height for o in many]),
                         np.stack([o.mask for o in many]))
    return torch.from_numpy(arr)


def valid_actions(region: Region, envelope: SafetyEnvelope) -> np.ndarray:
    """``(2, 16, size, size)`` bool: region cells whose push / grasp footprint stays in the workspace."""
    g = envelope.grid
    rows = np.arange(region.row0, region.row0 + region.size)
    cols = np.arange(region.col0, region.col0 + region.size)
    x, y = g.center_of(rows[:, None], cols[None, :])
    a, b = envelope.gripper.grasp_half_extents()
    r = envelope.gripper.closed_radius()
    eps = 1e-9
    out = np.zeros((2, N_ROTATIONS, region.size, region.size), bool)
    for i in range(N_ROTATIONS):
        c, s = math.cos(rotation_angle(i)), math.sin(rotation_angle(i))
        ex, ey = a * abs(c) + b * abs(s), a * abs(s) + b * abs(c)
        out[GRASP, i] = ((x - ex >= g.x_min - eps) & (x + ex <= g.x_max + eps)
                         & (y - ey >= g.y_min - eps) & (y + ey <= g.y_max + eps))
        e = r * (abs(c) + abs(s))
        xe, ye = x + envelope.push_length * c, y + envelope.push_length * s
        out[PUSH, i] = ((np.minimum(x, xe) - e >= g.x_min - eps) & (np.maximum(x, xe) + e <= g.x_max + eps)
                        & (np.minimum(y, ye) - e >= g.y_min - eps) & (np.maximum(y, ye) + e <= g.y_max + eps))
    return out


def local_top(height: np.ndarray, row: int, col: int, radius: int = LOCAL_RADIUS) -> float:
    """Highest height-map value within ``radius`` cells of (row, col)."""
    r0, c0 = max(row - radius, 0), max(col - radius, 0)
    patch = height[r0:row + radius + 1, c0:col + radius + 1]
    return float(patch.max()) if patch.size else 0.0


def to_action(kind: int, rotation: int, row: int, col: int, heightmaps, envelope: SafetyEnvelope) -> Action:
    """The primitive at a heightmap cell in metres; heights come from the height map under the tool."""
    g = heightmaps.grid
    x, y = g.center_of(row, col)
    top = local_top(heightmaps.height, row, col)
    floor = envelope.z_min - g.table_z
    z = max(top - GRASP_DEPTH, floor) if kind == GRASP else max(top, PUSH_HEIGHT)
    return Action(KINDS[kind], float(x), float(y), float(g.table_z + z), rotation_angle(rotation))


def strip(push: Action, heightmaps, length: float, depth: float = STRIP_DEPTH) -> Action:
    """``push`` with its fingertips ``depth`` below the highest point along its stroke (never lower).

    Used where a guard sighted an impurity under a heap (``Attention.sighting``): what hides such an
    impurity most often lies on it, and a push at the table shoves the pile along with that item riding
    on top (a brick lying squarely on the block travelled with it through a whole 30-action search); a
    push at the height of the top layer strips it off. Recipes may strip every heap search
    (``policy.search_push: strip``), where items lying on a flat impurity ride along with it (coal). The
    depth, and where stripping pays (at sightings; every search on coal-slate, not on mushrooms,
    potatoes or toy-blocks; never in target mode), were measured on training seeds (issue #4's notes).
    """
    g = heightmaps.grid
    height = np.nan_to_num(np.asarray(heightmaps.height, np.float32), nan=0.0)
    along = np.linspace(0.0, length, int(round(length / g.cell_size)) + 1)
    rows, cols = g.cell_of(push.x + along * math.cos(push.angle), push.y + along * math.sin(push.angle))
    inside = (rows >= 0) & (rows < g.cells) & (cols >= 0) & (cols < g.cells)
    cells = zip(rows[inside], cols[inside], strict=True)
    peak = max((local_top(height, int(r), int(c), STRIP_RADIUS) for r, c in cells), default=0.0)
    return replace(push, z=max(push.z, g.table_z + peak - depth))


@dataclass
class Exploration:
    """Epsilon-greedy settings while training.

    With probability ``epsilon`` the agent explores: with probability ``guide`` it takes what the
    ``prior`` policy (the scripted heuristic) would do, provided that lands on an allowed cell, otherwise
    a random primitive, rotation and cell (grasps only on occupied cells).
    """

    epsilon: float = 0.0
    guide: float = 0.0
    grasp_share: float = 0.5
    prior: Policy | None = None


class PushGraspAgent(Policy):
    """Paper 2's push-grasp synergy policy over the attention crop (or the whole scene)."""

    def __init__(self, net: QNetwork, m: Method, envelope: SafetyEnvelope, sha256: str = "",
                 exploration: Exploration | None = None, grasp_confidence: float | None = GRASP_CONFIDENCE,
                 cover_check: bool = True, pad_margin: float = 0.0, strip_searches: bool = False,
                 grasp_min_area: float = 0.0, shove_aside: tuple[float, float] | None = None):
        self.net = net
        self.grasp_confidence = grasp_confidence
        self.cover_check = cover_check  # see PolicySpec.cover_check
        self.shove_aside = shove_aside  # (across m, max_area m^2), see PolicySpec.shove_aside
        self.pad_margin = pad_margin  # m, see PolicySpec.pad_margin
        self.grasp_min_area = grasp_min_area  # m^2, see PolicySpec.grasp_min_area
        self._sliver_pushes = 0  # pushes in a row at a sliver of the target (see _sliver)
        self.strip_searches = strip_searches  # see PolicySpec.search_push
        self._kept: np.ndarray | None = None
        self.method = m
        self.envelope = envelope
        self.grid = envelope.grid
        self.sha256 = sha256
        self.exploration = exploration or Exploration()
        self.explored = False
        self.last_greedy: tuple[int, int, int, int] | None = None
        self.guard = RepeatGuard()
        self.name = m.name

    def observe(self, attention, heightmaps) -> Observation:
        region, mask = region_and_mask(self.method, attention, self.grid)
        return observe(heightmaps, region, mask)

    def q_values(self, obs: Observation) -> np.ndarray:
        """Q ``(2, 16, size, size)`` over the observation's region."""
        with torch.inference_mode():
            return q_region(self.net, scene_tensor(obs), obs.region, self.grid).numpy()

    def allowed(self, obs: Observation, attention=None, heightmaps=None) -> np.ndarray:
        """Valid actions of the region.

        Without a visible target only pushes are allowed (paper 2, section 4: the pushing network
        scatters the cluster until a target shows); S-VPG keeps only cells on the salient target. With
        the height maps, the method's affordance masks apply (see ``afford``).
        """
        ok = valid_actions(obs.region, self.envelope) & obs.region.inside_grid(self.grid)[None, None]
        if attention is not None and attention.mode != "target" and not self.method.whole_scene:
            ok[GRASP] = False
        if self.method.restrict_to_mask and attention is not None and attention.mode == "target":
            r = obs.region
            target = _crop(np.asarray(attention.target_mask, bool), r)
            if (ok & target[None, None]).any():
                ok &= target[None, None]
        if heightmaps is not None:
            ok = self.afford(ok, obs.region, heightmaps, attention)
        return ok

    def _kept_in(self) -> np.ndarray:
        if self._kept is None:
            self._kept = affordance.push_kept_in(self.grid, self.envelope.push_length)
        return self._kept

    def afford(self, ok: np.ndarray, region: Region, heightmaps, attention=None) -> np.ndarray:
        """``ok`` limited to what the gripper can carry out (``sorter/policy/affordance.py``).

        Grasps: pads landing clear; with a visible target, on the target and (``cover_check``) with
        nothing lying on it between the jaws nor under the tool, and none while less than
        ``grasp_min_area`` of it shows; of those, the ones whose pads land clear even grown by
        ``pad_margin`` when there are any. They may all go: the policy must push first.
        Pushes: none that drives the target (or the cluster that may hide one) against the border while
        another action is left; then, of the first kind that exists: a free start whose stroke
        reaches what it should move (``_meets``) and ends inside the margin, one that reaches it, a free
        start ending inside the margin, any free start; else unchanged, so a policy always has an action.
        """
        height = np.nan_to_num(np.asarray(heightmaps.height, np.float32), nan=0.0)
        top = affordance.dilate(height, np.ones((2 * LOCAL_RADIUS + 1,) * 2, np.uint8))
        floor = self.envelope.z_min - self.grid.table_z
        grasp_z = np.maximum(top - GRASP_DEPTH, floor)
        out = ok.copy()
        clear = affordance.grasp_clear(height, grasp_z, self.envelope.gripper, self.grid)
        out[GRASP] &= np.stack([_crop(c, region) for c in clear])
        if self.method.use_mask and attention is not None and attention.mode == "target":
            target = np.asarray(attention.target_mask, bool)
            out[GRASP] &= _crop(target, region)[None]
            if self.cover_check:
                aside, area = self.shove_aside or (0.0, 0.0)
                uncovered = affordance.grasp_uncovered(height, target, self.envelope.gripper, self.grid,
                                                       aside, area)
                out[GRASP] &= np.stack([_crop(c, region) for c in uncovered])
                out[GRASP] &= _crop(affordance.grasp_at_target_level(top, height, target), region)[None]
            if self._sliver(attention) and self._sliver_pushes < SLIVER_PATIENCE:
                out[GRASP] = False  # a sliver of a half-hidden target: push it free first
        if self.pad_margin > 0 and out[GRASP].any():  # prefer grasps with slack around the pads
            roomy = affordance.grasp_clear(height, grasp_z, self.envelope.gripper, self.grid, self.pad_margin)
            roomy = out[GRASP] & np.stack([_crop(c, region) for c in roomy])
            if roomy.any():
                out[GRASP] = roomy
        guarded = _guarded(attention) if self.method.use_mask else None
        if guarded is not None:
            spares = affordance.push_spares_border(self.grid, guarded, self.envelope.push_length,
                                                   self.envelope.gripper)
            spared = out[PUSH] & np.stack([_crop(k, region) for k in spares])
            if spared.any() or out[GRASP].any():
                out[PUSH] = spared
        free = _crop(affordance.push_free(height, self.envelope.gripper, self.grid), region)[None]
        kept = np.stack([_crop(k, region) for k in self._kept_in()])
        meets = self._meets(height, region, guarded, attention, free)
        for limit in (free & kept & meets, free & meets, free & kept, free):
            if (out[PUSH] & limit).any():
                out[PUSH] &= limit
                break
        return out if out.any() else ok

    def _meets(self, height: np.ndarray, region: Region, guarded: np.ndarray | None, attention,
               free: np.ndarray) -> np.ndarray:
        """Pushes whose stroke reaches what a push should move: with a target, what lies on it or stands
        over it at its rim (``affordance.cover_cells``) when a stroke from a free start of the region
        (``free``, cropped) can reach that, else the objects crowding it (within the gripper opening, as
        TCDD counts them); with a cluster that may hide one, the cluster (``guarded`` holds either); else
        anything on the table. A stroke that misses them cannot uncover or separate the target.

        Why the cover first: a half-covered target mostly admits no grasp (the jaws would close on the
        cover), and a push that spreads its other neighbours raises TCDD without ever freeing it (traced
        on a toy-blocks training scene: the block stayed half hidden push after push).
        """
        gripper, length = self.envelope.gripper, self.envelope.push_length
        focus = guarded
        if focus is not None and attention.mode == "target":
            cover = affordance.cover_cells(height, focus, self.grid)
            reach = affordance.push_meets(cover, gripper, self.grid, length)
            reach = np.stack([_crop(m, region) for m in reach])
            if (reach & free).any():  # else the crowding, not free starts that reach nothing in particular
                return reach
            focus = affordance.crowding(height, focus, gripper.max_opening, self.grid)
        if focus is None or not focus.any():
            focus = height > affordance.FREE_HEIGHT
        reach = affordance.push_meets(focus, gripper, self.grid, length)
        return np.stack([_crop(m, region) for m in reach])

    def decide(self, attention, heightmaps, rng: np.random.Generator) -> Decision:
        """The policy's action for this view; actions that just changed nothing are not repeated."""
        obs = self.observe(attention, heightmaps)
        self.guard.update(heightmaps.height)
        ok = self.guard.block(self.allowed(obs, attention, heightmaps), obs.region)
        decision = self.decide_on(obs, heightmaps, rng, ok, attention)
        self.guard.remember(decision)
        pushed_sliver = decision.action.kind == ActionKind.PUSH and self._sliver(attention)
        self._sliver_pushes = self._sliver_pushes + 1 if pushed_sliver else 0
        return decision

    def _sliver(self, attention) -> bool:
        """Less of the visible target shows than ``grasp_min_area`` (methods that read attention only)."""
        if self.grasp_min_area <= 0 or not self.method.use_mask or attention is None \
                or attention.mode != "target":
            return False
        shown = np.count_nonzero(attention.target_mask) * self.grid.cell_size ** 2
        return bool(shown < self.grasp_min_area)

    def decide_on(self, obs: Observation, heightmaps, rng: np.random.Generator,
                  allowed: np.ndarray | None = None, attention=None) -> Decision:
        """Greedy (or, while exploring, epsilon-greedy) choice among the allowed actions of ``obs``."""
        q = self.q_values(obs)
        ok = self.allowed(obs) if allowed is None else allowed
        if not ok.any():
            raise ValueError("no valid action in the region; the crop lies outside the workspace")
        greedy = greedy_index(q, ok, self.grasp_confidence)
        self.last_greedy = (greedy[0], greedy[1], obs.region.row0 + greedy[2], obs.region.col0 + greedy[3])
        explore = self.exploration.epsilon > 0 and rng.random() < self.exploration.epsilon
        idx = self._explore(obs, heightmaps, ok, rng, attention) if explore else greedy
        self.explored = explore
        kind, rot, i, j = idx
        row, col = obs.region.row0 + i, obs.region.col0 + j
        action = to_action(kind, rot, row, col, heightmaps, self.envelope)
        if kind == PUSH and self._strips(attention):
            action = strip(action, heightmaps, self.envelope.push_length)
        best = np.where(ok, q, -np.inf).reshape(2, -1).max(axis=1)
        return Decision(action, float(best[PUSH]), float(best[GRASP]), (rot, row, col),
                        self._display_map(q[kind], ok[kind], obs.region))

    def _strips(self, attention) -> bool:
        """Whether a push strips the top layer (``strip``): at a sighting, and in every heap search
        where the recipe says so (``policy.search_push: strip``)."""
        if attention is None or attention.mode != "cluster":
            return False
        return attention.sighting is not None or self.strip_searches

    def _explore(self, obs: Observation, heightmaps, ok: np.ndarray, rng: np.random.Generator,
                 attention=None) -> tuple[int, int, int, int]:
        """The prior's action (with probability ``guide``) or a random primitive, rotation and cell."""
        ex = self.exploration
        if ex.prior is not None and attention is not None and rng.random() < ex.guide:
            guided = self._prior_index(obs, heightmaps, ok, rng, attention)
            if guided is not None:
                return guided
        kind = GRASP if rng.random() < ex.grasp_share else PUSH
        if not ok[kind].any():
            kind = PUSH if kind == GRASP else GRASP
        cells = ok[kind].any(axis=0)
        if kind == GRASP:
            cells &= _crop(heightmaps.height, obs.region) > OCCUPIED
        if not cells.any():
            cells = ok[kind].any(axis=0)
        flat = np.flatnonzero(cells)
        i, j = np.unravel_index(int(rng.choice(flat)), cells.shape)
        rots = np.flatnonzero(ok[kind, :, i, j])
        return kind, int(rng.choice(rots)), int(i), int(j)

    def _prior_index(self, obs: Observation, heightmaps, ok: np.ndarray, rng: np.random.Generator,
                     attention) -> tuple[int, int, int, int] | None:
        """The prior policy's choice as (kind, rotation, i, j) in the region, if it is an allowed action."""
        d = self.exploration.prior.decide(attention, heightmaps, rng)
        kind = GRASP if d.kind is ActionKind.GRASP else PUSH
        rot, row, col = d.pixel
        i, j = row - obs.region.row0, col - obs.region.col0
        if not (0 <= i < obs.region.size and 0 <= j < obs.region.size) or not ok[kind, rot, i, j]:
            return None
        return kind, int(rot), int(i), int(j)

    def _display_map(self, q: np.ndarray, ok: np.ndarray, region: Region) -> np.ndarray:
        """Max over rotations of one primitive's Q, pasted into the full grid (NaN outside the region)."""
        full = np.full((self.grid.cells, self.grid.cells), np.nan, np.float32)
        best = np.where(ok, q, -np.inf).max(axis=0)
        best[~np.isfinite(best)] = np.nan
        _paste(full, best, region)
        return full


class RepeatGuard:
    """Keeps a deterministic policy from repeating an action that changed nothing.

    A greedy policy facing an unchanged scene repeats itself, so one stubborn failure would use up a
    whole batch. When the height map barely changed since the previous decision (VPG's change detection,
    at most ``STALL_CELLS``), that action is remembered as ineffective and it, its neighbouring rotations
    and cells within ``REPEAT_RADIUS`` are excluded; a real change (progress, a new batch) forgets them.

    Why more than VPG's 300 cells: a push whose stroke ends against a potato rocks it, and it rolls back,
    changing about 300 cells each time. Counted as progress, that reset the memory after every try: on a
    traced potato heap two such pushes took eight actions, until the heap had settled too low to hide
    anything and the batch was declared clean with the clod still hidden.
    A grasp that bins a small impurity changes fewer cells too; its spot is then refused, which costs
    nothing, since what was there is gone.
    """

    def __init__(self):
        self.height: np.ndarray | None = None
        self.last: tuple[int, int, int, int] | None = None
        self.failed: list[tuple[int, int, int, int]] = []

    def update(self, height: np.ndarray) -> None:
        if self.last is not None and self.height is not None and self.height.shape == height.shape:
            if changed_cells(self.height, height) <= STALL_CELLS:
                self.failed.append(self.last)
            else:
                self.failed.clear()
        self.height = np.array(height, np.float32, copy=True)

    def remember(self, decision: Decision) -> None:
        rot, row, col = decision.pixel
        self.last = (GRASP if decision.kind is ActionKind.GRASP else PUSH, rot, row, col)

    def block(self, ok: np.ndarray, region: Region) -> np.ndarray:
        """``ok`` without the remembered actions (unchanged when that would leave nothing)."""
        if not self.failed:
            return ok
        out = ok.copy()
        r = REPEAT_RADIUS
        for kind, rot, row, col in self.failed:
            i, j = row - region.row0, col - region.col0
            rots = [(rot + d) % N_ROTATIONS for d in (-1, 0, 1)]
            if kind == GRASP:
                rots += [(k + N_ROTATIONS // 2) % N_ROTATIONS for k in rots]
            out[kind, rots, max(i - r, 0):max(i + r + 1, 0), max(j - r, 0):max(j + r + 1, 0)] = False
        return out if out.any() else ok


def _guarded(attention) -> np.ndarray | None:
    """Cells a push must not drive against the border: the target, else the cluster that may hide one."""
    if attention is None:
        return None
    if attention.mode == "target":
        return np.asarray(attention.target_mask, bool)
    if attention.mode == "cluster" and attention.cluster is not None:
        return np.asarray(attention.cluster.mask, bool)
    return None


def greedy_index(q: np.ndarray, ok: np.ndarray, confidence: float | None) -> tuple[int, int, int, int]:
    """The greedy action: the best grasp once its Q reaches ``confidence``, else the best of both heads.

    With gamma 0.5 a push that is rewarded (0.5 for a TCDD rise, 1 for a detected change) and leads to a
    sure grasp is worth as much as, or more than, that sure grasp now, so a plain argmax keeps pushing an
    impurity that could already be picked. A grasp's Q is (for the last impurity) its predicted success,
    so a confident grasp is taken at once; below the threshold the heads compete as in paper 2.
    """
    if confidence is not None and ok[GRASP].any():
        grasp = _argmax(q[GRASP:GRASP + 1], ok[GRASP:GRASP + 1])
        if q[GRASP, grasp[1], grasp[2], grasp[3]] >= confidence:
            return GRASP, grasp[1], grasp[2], grasp[3]
    return _argmax(q, ok)


def _argmax(q: np.ndarray, ok: np.ndarray) -> tuple[int, int, int, int]:
    flat = int(np.argmax(np.where(ok, q, -np.inf)))
    kind, rot, i, j = np.unravel_index(flat, q.shape)
    return int(kind), int(rot), int(i), int(j)


def _crop(full: np.ndarray, region: Region) -> np.ndarray:
    """The region's block of a full-grid array, zero-padded where the region leaves the grid."""
    out = np.zeros((region.size, region.size), full.dtype)
    _paste_from(out, full, region)
    return out


def _paste_from(out: np.ndarray, full: np.ndarray, region: Region) -> None:
    n = full.shape[0]
    r0, c0 = max(region.row0, 0), max(region.col0, 0)
    r1, c1 = min(region.row0 + region.size, n), min(region.col0 + region.size, n)
    out[r0 - region.row0:r1 - region.row0, c0 - region.col0:c1 - region.col0] = full[r0:r1, c0:c1]


def _paste(full: np.ndarray, block: np.ndarray, region: Region) -> None:
    n = full.shape[0]
    r0, c0 = max(region.row0, 0), max(region.col0, 0)
    r1, c1 = min(region.row0 + region.size, n), min(region.col0 + region.size, n)
    full[r0:r1, c0:c1] = block[r0 - region.row0:r1 - region.row0, c0 - region.col0:c1 - region.col0]


@dataclass
class Learner:
    """DQN updates from prioritized replay: Huber loss at the executed pixel, a target network.

    Labels ``r + gamma * Q'(s', a*)`` are recomputed with the current target network every time a
    transition is replayed. ``a*`` is the greedy valid action the online network picked when it stood in
    ``s'`` (stored with the observation), which makes the target a Double-DQN one and costs one rotated
    window instead of all 16; observations without a stored choice fall back to ``max Q'(s')``.
    """

    net: QNetwork
    envelope: SafetyEnvelope
    lr: float = LEARNING_RATE
    batch_size: int = 8
    target_every: int = 100
    symmetric_grasps: bool = True
    steps: int = 0
    target: QNetwork = field(init=False)
    optimizer: torch.optim.SGD = field(init=False)
    _max_cache: dict[int, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.target = copy.deepcopy(self.net).eval()
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=self.lr, momentum=MOMENTUM,
                                         weight_decay=WEIGHT_DECAY)

    def step(self, replay: ReplayBuffer, rng: np.random.Generator, beta: float = 0.5) -> float:
        """One gradient step on a prioritized batch; returns the mean Huber loss."""
        batch = replay.sample(self.batch_size, rng, beta)
        labels = torch.from_numpy(self.labels(replay, batch))
        kinds, rots, slots = list(batch.kind), list(batch.rotation), list(batch.slots)
        weights = torch.from_numpy(batch.weights)
        if self.symmetric_grasps:
            extra = np.flatnonzero(batch.kind == GRASP)
            kinds += [GRASP] * len(extra)
            rots += [(int(batch.rotation[k]) + N_ROTATIONS // 2) % N_ROTATIONS for k in extra]
            slots += [batch.slots[k] for k in extra]
            labels, weights = torch.cat([labels, labels[extra]]), torch.cat([weights, weights[extra]])
        pred = _q_points(self.net, replay, slots, kinds, rots, [replay.cell[s] for s in slots], self.envelope)
        loss = (torch.nn.functional.smooth_l1_loss(pred, labels, reduction="none") * weights).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        n = len(batch.slots)
        replay.update_priorities(batch.slots, (pred[:n] - labels[:n]).detach().numpy())
        self.steps += 1
        if self.steps % self.target_every == 0:
            self.sync_target()
        return float(loss.detach())

    def sync_target(self) -> None:
        self.target.load_state_dict(self.net.state_dict())
        self._max_cache.clear()

    def labels(self, replay: ReplayBuffer, batch: Batch) -> np.ndarray:
        """``r + gamma * Q'(s', a*)`` per sampled transition (``r`` alone for terminal ones)."""
        y = batch.reward.astype(np.float32).copy()
        nxt = [replay.next_slot(s) for s, more in zip(batch.slots, batch.has_next, strict=True) if more]
        if not nxt:
            return y
        values = self._next_values(replay, nxt)
        y[np.flatnonzero(batch.has_next)] += GAMMA * values
        return y

    def _next_values(self, replay: ReplayBuffer, slots: list[int]) -> np.ndarray:
        out = np.zeros(len(slots), np.float32)
        known = [k for k, s in enumerate(slots) if replay.greedy[s, 0] >= 0]
        if known:
            g = replay.greedy[[slots[k] for k in known]].astype(np.int64)
            with torch.inference_mode():
                q = _q_points(self.target, replay, [slots[k] for k in known], list(g[:, 0]), list(g[:, 1]),
                              list(g[:, 2:]), self.envelope)
            out[known] = q.numpy()
        for k, s in enumerate(slots):
            if replay.greedy[s, 0] < 0:
                out[k] = self._max_value(replay, s)
        return out

    def _max_value(self, replay: ReplayBuffer, slot: int) -> float:
        if slot not in self._max_cache:
            obs = replay.observation(slot)
            with torch.inference_mode():
                q = q_region(self.target, scene_tensor(obs), obs.region, self.envelope.grid).numpy()
            ok = valid_actions(obs.region, self.envelope) & obs.region.inside_grid(self.envelope.grid)
            self._max_cache[slot] = float(q[ok].max()) if ok.any() else 0.0
        return self._max_cache[slot]


def _q_points(net: QNetwork, replay: ReplayBuffer, slots: list[int], kinds: list[int], rots: list[int],
              cells: list[np.ndarray], envelope: SafetyEnvelope) -> torch.Tensor:
    """Q of primitive ``kinds[k]`` at rotation ``rots[k]`` and heightmap cell ``cells[k]`` of each slot."""
    obs = [replay.observation(s) for s in slots]
    grid = envelope.grid
    centers = torch.tensor([o.region.center_norm(grid) for o in obs], dtype=torch.float32)
    offsets = torch.stack([_cell_offset(o.region, c, grid) for o, c in zip(obs, cells, strict=True)])
    angles = torch.tensor([rotation_angle(int(r)) for r in rots], dtype=torch.float32)
    q = q_at(net, scene_tensor(obs), centers, angles, offsets, obs[0].region.window_cells())
    return q[torch.arange(len(kinds)), torch.tensor([int(k) for k in kinds])]


def _cell_offset(region: Region, cell: np.ndarray, grid: WorkspaceGrid) -> torch.Tensor:
    """Normalised offset of an absolute heightmap cell from the region centre."""
    i, j = int(cell[0]) - region.row0, int(cell[1]) - region.col0
    return region_offsets(region, grid)[0, i, j]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(path: Path, net: QNetwork, m: Method, info: dict[str, str] | None = None) -> str:
    """Write the network's weights as safetensors with the method in the metadata; returns the sha256."""
    from safetensors.torch import save_file

    meta = {"format": MODEL_FORMAT, "method": m.name, "width": str(net.stem.out_channels),
            "in_channels": str(net.stem.in_channels), **(info or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata=meta)
    return file_sha256(path)


def load_model(path: Path) -> tuple[QNetwork, dict[str, str], str]:
    """Read a model file; raises ModelFileError naming the file when it is missing or unusable."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; train one with `sorter train` or fix "
                             "the recipe's policy.model path")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"model file {path} is unreadable or corrupt ({exc}); re-train or restore "
                             "it") from None
    if meta.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"model file {path} is not a {MODEL_FORMAT} model (format "
                             f"{meta.get('format')!r})")
    try:
        net = QNetwork(int(meta["in_channels"]), int(meta["width"]))
        net.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"model file {path} does not match the network ({exc})") from None
    return net.eval(), meta, file_sha256(path)


def load_agent(recipe, method_name: str | None = None, path: Path | None = None) -> PushGraspAgent:
    """The recipe's trained agent; ``method_name``/``path`` override what the file and recipe say."""
    if path is None:
        if not recipe.policy.model:
            raise ModelFileError(f"recipe {recipe.path} names no policy.model file")
        path = recipe.resolve(recipe.policy.model)
    net, meta, sha = load_model(Path(path))
    m = method(method_name or meta.get("method", "ours"))
    if m.model != meta.get("method"):
        raise ModelFileError(f"model file {path} holds '{meta.get('method')}' weights but method "
                             f"'{m.name}' runs '{m.model}' weights")
    return PushGraspAgent(net, m, SafetyEnvelope.from_recipe(recipe), sha,
                          cover_check=recipe.policy.cover_check, pad_margin=recipe.policy.pad_margin,
                          strip_searches=recipe.policy.search_push == "strip",
                          grasp_min_area=recipe.policy.grasp_min_area, shove_aside=_shove_aside(recipe))


def _shove_aside(recipe) -> tuple[float, float] | None:
    spec = recipe.policy.shove_aside
    return None if spec is None else (spec.across, spec.max_area)

