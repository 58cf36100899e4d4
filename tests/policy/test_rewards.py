"""TCDD and the push / grasp rewards against scenes computed by hand (paper 2, eqs. 2-3 and 5.2.3)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from sorter.policy import rewards

ETA = 0.085


@dataclass
class Obj:
    """Ground-truth object state in the shape the rewards read (id, position, flags)."""

    id: int
    position: np.ndarray
    is_impurity: bool = False
    in_workspace: bool = True
    in_bin: bool = False
    held: bool = False
    name: str = field(default="block")


def test_tcdd_hand_computed_three_objects():
    # distances 0.03 and 0.2 (capped at eta): (0.03 + 0.085) / (2 * 0.085)
    value = rewards.tcdd(np.array([0.0, 0.0]), np.array([[0.03, 0.0], [0.0, 0.2]]), ETA)
    assert value == pytest.approx(0.115 / 0.17)


def test_tcdd_isolated_target_is_one_and_touching_target_is_small():
    assert rewards.tcdd(np.zeros(3), np.array([[0.5, 0, 0], [0, -0.3, 0]]), ETA) == 1.0
    assert rewards.tcdd(np.zeros(3), np.empty((0, 3)), ETA) == 1.0
    assert rewards.tcdd(np.zeros(2), np.array([[0.0085, 0.0]]), ETA) == pytest.approx(0.1)


def test_tcdd_rejects_non_positive_eta():
    with pytest.raises(ValueError, match="eta"):
        rewards.tcdd(np.zeros(2), np.ones((1, 2)), 0.0)


def test_push_reward_threshold_is_strictly_more_than_delta():
    assert rewards.tcdd_push_reward(0.50, 0.506) == 0.5
    assert rewards.tcdd_push_reward(0.50, 0.504) == 0.0
    assert rewards.tcdd_push_reward(0.50, 0.40) == 0.0


def test_occlusion_reward_needs_the_hidden_target_uncovered_by_a_tenth():
    assert rewards.occlusion_push_reward(1.0, 0.9) == 0.5
    assert rewards.occlusion_push_reward(0.8, 0.35) == 0.5
    assert rewards.occlusion_push_reward(1.0, 0.95) == 0.0
    assert rewards.occlusion_push_reward(0.6, 0.7) == 0.0  # covered further


def _scene(target_xy, other_xy):
    objs = [Obj(1, np.array([*target_xy, 0.015]), is_impurity=True)]
    objs += [Obj(i + 2, np.array([*p, 0.015])) for i, p in enumerate(other_xy)]
    return objs


def test_scene_push_reward_when_neighbour_is_pushed_away():
    before = _scene((0.5, 0.0), [(0.53, 0.0), (0.5, 0.2)])  # TCDD (0.03 + 0.085) / 0.17 = 0.676
    after = _scene((0.5, 0.0), [(0.58, 0.0), (0.5, 0.2)])  # TCDD (0.08 + 0.085) / 0.17 = 0.971
    assert rewards.scene_tcdd(before, 1, ETA) == pytest.approx(0.115 / 0.17)
    assert rewards.scene_tcdd(after, 1, ETA) == pytest.approx(0.165 / 0.17)
    assert rewards.push_reward_for(before, after, 1, ETA) == 0.5
    assert rewards.push_reward_for(after, before, 1, ETA) == 0.0


def test_objects_off_the_table_do_not_count():
    objs = _scene((0.5, 0.0), [(0.51, 0.0), (0.52, 0.0)])
    objs[1].in_bin = True
    objs[2].in_workspace = False
    assert rewards.scene_tcdd(objs, 1, ETA) == 1.0


def test_push_reward_is_zero_without_target_or_when_target_left():
    before = _scene((0.5, 0.0), [(0.53, 0.0)])
    after = _scene((0.5, 0.0), [(0.6, 0.0)])
    after[0].in_workspace = False
    assert rewards.push_reward_for(before, after, 1, ETA) == 0.0
    assert rewards.push_reward_for(before, before, None, ETA) == 0.0


def test_nearest_impurity_picks_the_closest_on_the_table():
    objs = _scene((0.5, 0.0), [(0.3, 0.0)])
    objs.append(Obj(9, np.array([0.35, 0.0, 0.01]), is_impurity=True))
    assert rewards.nearest_impurity(objs, (0.34, 0.0)) == 9
    assert rewards.nearest_impurity(objs, (0.6, 0.0)) == 1
    objs[0].in_bin, objs[2].held = True, True
    assert rewards.nearest_impurity(objs, (0.6, 0.0)) is None


def test_change_detection_counts_credible_height_changes():
    before = np.zeros((224, 224), np.float32)
    after = before.copy()
    after[:10, :30] = 0.02  # 300 cells changed: not more than 300
    after[50, 50] = 0.005  # below VPG's 1 cm noise floor
    after[60, 60] = 0.5  # above its 0.3 m validity bound
    assert rewards.changed_cells(before, after) == 300
    assert rewards.change_push_reward(before, after) == 0.0
    after[20, 0] = 0.03
    assert rewards.change_push_reward(before, after) == rewards.NO_T_PUSH_REWARD
    assert rewards.change_push_reward(before, after, rewards.VPG_PUSH_REWARD) == 0.5


def test_grasp_reward_only_for_impurities_unless_target_agnostic():
    before = _scene((0.5, 0.0), [(0.6, 0.0)])
    product_taken = _scene((0.5, 0.0), [(0.6, 0.0)])
    product_taken[1].in_bin = True
    impurity_held = _scene((0.5, 0.0), [(0.6, 0.0)])
    impurity_held[0].held = True
    assert rewards.grasp_reward(before, impurity_held) == 1.0
    assert rewards.grasp_reward(before, product_taken) == 0.0
    assert rewards.grasp_reward(before, product_taken, target_agnostic=True) == 1.0
    assert rewards.grasp_reward(before, before, target_agnostic=True) == 0.0


def test_already_binned_impurity_is_not_picked_again():
    before = _scene((0.5, 0.0), [(0.6, 0.0)])
    before[0].in_bin = True
    assert rewards.grasp_reward(before, before) == 0.0
