"""Training rewards as pure functions of simulator ground truth (paper 2, section 5.2).

The same functions score a simulated episode and, given tracked object positions, a real run log. Objects
are anything with ``id``, ``position`` (metres), ``is_impurity``, ``in_workspace``, ``in_bin`` and
``held``, such as the simulated cell's ``ObjectState``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

GRASP_REWARD = 1.0  # paper 2, 5.2.3: a successful grasp of the target
PUSH_REWARD = 0.5  # paper 2, 5.2.3: a push that raises the target's TCDD by more than delta
TCDD_DELTA = 0.005  # paper 2, 5.2.3: noise margin on the TCDD rise
CHANGE_CELLS = 300  # VPG / paper 2 6.3.2 (no-T): height-map cells that must change for a push to count
CHANGE_MIN_HEIGHT = 0.01  # m; VPG's change detection ignores smaller height differences (noise)
CHANGE_MAX_HEIGHT = 0.3  # m; and larger ones (invalid depth)
OCCLUSION_DROP = 0.1  # paper 1: a push that lowers the hidden target's occlusion rate this much is rewarded
NO_T_PUSH_REWARD = 1.0  # paper 2, 6.3.2: the no-TCDD ablation rewards a detected change with 1
VPG_PUSH_REWARD = 0.5  # VPG (Zeng et al. 2018): a detected change earns 0.5


class ObjectLike(Protocol):
    id: int
    position: np.ndarray
    is_impurity: bool
    in_workspace: bool
    in_bin: bool
    held: bool


def tcdd(target: np.ndarray, others: np.ndarray, eta: float) -> float:
    """Target-centric dispersion degree (paper 2, eqs. 2-3): mean of min(distance, eta) / eta.

    ``target`` is the target's centre, ``others`` ``(K-1, D)`` the centres of every other object in the
    scene. 1 means nothing lies within ``eta`` (the gripper's opening) of the target; an empty scene
    around the target is perfectly isolated.
    """
    if eta <= 0:
        raise ValueError(f"eta must be positive, got {eta}")
    target = np.asarray(target, dtype=np.float64).ravel()
    others = np.asarray(others, dtype=np.float64).reshape(-1, target.size)
    if len(others) == 0:
        return 1.0
    d = np.linalg.norm(others - target[None, :], axis=1)
    return float(np.minimum(d, eta).sum() / (len(others) * eta))


def on_table(objects: Iterable[ObjectLike]) -> list[ObjectLike]:
    """Objects still lying in the workspace: neither held, nor in the bin, nor fallen off."""
    return [o for o in objects if o.in_workspace and not o.in_bin and not o.held]


def scene_tcdd(objects: Sequence[ObjectLike], target_id: int, eta: float) -> float:
    """TCDD of object ``target_id`` against every other object on the table."""
    present = on_table(objects)
    target = next((o for o in present if o.id == target_id), None)
    if target is None:
        raise ValueError(f"object {target_id} is not on the table")
    centre = np.asarray(target.position, dtype=np.float64)
    others = [o.position for o in present if o.id != target_id]
    return tcdd(centre, np.asarray(others, dtype=np.float64).reshape(len(others), centre.size), eta)


def nearest_impurity(objects: Sequence[ObjectLike], point_xy: tuple[float, float]) -> int | None:
    """Id of the impurity on the table closest (in x, y) to ``point_xy``; None when there is none."""
    candidates = [o for o in on_table(objects) if o.is_impurity]
    if not candidates:
        return None
    d = [np.hypot(o.position[0] - point_xy[0], o.position[1] - point_xy[1]) for o in candidates]
    return candidates[int(np.argmin(d))].id


def tcdd_push_reward(before: float, after: float, delta: float = TCDD_DELTA) -> float:
    """Paper 2's push reward: 0.5 when the target's TCDD rose by more than ``delta``, else 0."""
    return PUSH_REWARD if after - before > delta else 0.0


def push_reward_for(before: Sequence[ObjectLike], after: Sequence[ObjectLike], target_id: int | None,
                    eta: float) -> float:
    """TCDD push reward of one push for the target ``target_id`` (0 without a target or if it left)."""
    if target_id is None or not any(o.id == target_id for o in on_table(after)):
        return 0.0
    return tcdd_push_reward(scene_tcdd(before, target_id, eta), scene_tcdd(after, target_id, eta))


def occlusion_push_reward(before: float, after: float, drop: float = OCCLUSION_DROP) -> float:
    """Paper 1's uncovering reward, for a push made while no impurity shows: PUSH_REWARD when the hidden
    target's occlusion rate fell by at least ``drop``, else 0."""
    return PUSH_REWARD if before - after >= drop - 1e-12 else 0.0


def changed_cells(height_before: np.ndarray, height_after: np.ndarray) -> int:
    """Height-map cells whose height changed by a credible amount (VPG's change detection)."""
    diff = np.abs(np.asarray(height_after, np.float64) - np.asarray(height_before, np.float64))
    diff = np.nan_to_num(diff, nan=0.0)
    return int(np.count_nonzero((diff >= CHANGE_MIN_HEIGHT) & (diff <= CHANGE_MAX_HEIGHT)))


def change_push_reward(height_before: np.ndarray, height_after: np.ndarray,
                       value: float = NO_T_PUSH_REWARD) -> float:
    """Change-detection push reward: ``value`` when more than 300 cells changed, else 0."""
    return value if changed_cells(height_before, height_after) > CHANGE_CELLS else 0.0


def picked(before: Sequence[ObjectLike], after: Sequence[ObjectLike]) -> list[ObjectLike]:
    """Objects that were on the table before an action and are held or in the bin after it."""
    was_on_table = {o.id for o in on_table(before)}
    return [o for o in after if o.id in was_on_table and (o.held or o.in_bin)]


def grasp_reward(before: Sequence[ObjectLike], after: Sequence[ObjectLike],
                 target_agnostic: bool = False) -> float:
    """1 when the grasp picked an impurity (any object for target-agnostic VPG), else 0."""
    taken = picked(before, after)
    hit = bool(taken) if target_agnostic else any(o.is_impurity for o in taken)
    return GRASP_REWARD if hit else 0.0
