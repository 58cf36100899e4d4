"""Affordance masks: grasps whose pads would land on a neighbour, grasps under a covering item, pushes
starting on an object, shoving towards the edge or driving the target against the border are refused;
the confidence rule grasps when sure."""

from __future__ import annotations

import math

import cv2
import numpy as np

from sorter.cell.base import ActionKind
from sorter.cell.safety import SafetyEnvelope
from sorter.geometry import N_ROTATIONS, rotation_angle
from sorter.perception.attention import Attention, crop_around
from sorter.perception.heightmap import Heightmaps
from sorter.policy import affordance
from sorter.policy.agent import GRASP, METHODS, PUSH, SLIVER_PATIENCE, PushGraspAgent, greedy_index
from sorter.policy.network import QNetwork, Region
from sorter.recipe import load_recipe

RECIPE = load_recipe("recipes/toy-blocks.yaml")
ENVELOPE = SafetyEnvelope.from_recipe(RECIPE)
GRID = ENVELOPE.grid
GRIPPER = ENVELOPE.gripper
CELL = GRID.cell_size


def _block(height: np.ndarray, row: int, col: int, half: int, z: float) -> None:
    height[row - half:row + half + 1, col - half:col + half + 1] = z


def _pad_offset_cells() -> int:
    """Cells from a grasp centre to the middle of a pad."""
    return round((GRIPPER.max_opening / 2 + GRIPPER.pad_thickness / 2) / CELL)


def test_an_isolated_block_is_clear_at_every_rotation():
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    _block(height, 112, 112, 7, 0.03)
    clear = affordance.grasp_clear(height, np.full_like(height, 0.005), GRIPPER, GRID)
    assert clear[:, 112, 112].all()


def test_a_neighbour_under_one_pad_blocks_that_jaw_line_only():
    """A tall block where the rotation-0 pad lands (+x) refuses 0 and 180 degrees, not 90."""
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    _block(height, 112, 112, 7, 0.03)
    _block(height, 112, 112 + _pad_offset_cells(), 3, 0.04)
    clear = affordance.grasp_clear(height, np.full_like(height, 0.005), GRIPPER, GRID)
    assert not clear[0, 112, 112] and not clear[N_ROTATIONS // 2, 112, 112]
    assert clear[N_ROTATIONS // 4, 112, 112]


def test_a_pad_margin_keeps_pads_off_a_neighbour_just_beside_them():
    """With one cell of margin an item whose outline ends one cell beyond the pad's outer face blocks
    that jaw line (its flank may still meet the pad on the way down); without it, or two cells further
    out, the grasp is clear."""
    outer = math.ceil((GRIPPER.max_opening / 2 + GRIPPER.pad_thickness) / CELL)  # first cell beyond the pad
    for gap, margin, blocked in ((0, CELL, True), (0, 0.0, False), (2, CELL, False)):
        height = np.zeros((GRID.cells, GRID.cells), np.float32)
        _block(height, 112, 112, 7, 0.03)
        height[100:125, 112 + outer + gap:112 + outer + gap + 10] = 0.04  # a wall of items beyond the +x pad
        clear = affordance.grasp_clear(height, np.full_like(height, 0.005), GRIPPER, GRID, margin)
        assert clear[0, 112, 112] == (not blocked), f"gap of {gap} cells, margin {margin} m"
        assert clear[N_ROTATIONS // 4, 112, 112]  # the jaw line across x stays clear either way


def test_the_recipe_pad_margin_reaches_the_agent():
    from sorter.policy.agent import load_agent

    coal = load_recipe("recipes/coal-slate.yaml")
    assert coal.policy.pad_margin == 0.002
    assert load_agent(coal).pad_margin == coal.policy.pad_margin
    assert load_agent(RECIPE).pad_margin == RECIPE.policy.pad_margin == 0.0


def test_an_item_lying_on_the_target_covers_it():
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    target = np.zeros_like(height, bool)
    target[104:121, 104:112] = True  # the visible half of the impurity
    height[target] = 0.02
    height[100:125, 112:130] = 0.045  # an item lying across its other half
    uncovered = affordance.grasp_uncovered(height, target, GRIPPER, GRID)
    across_the_item = [0, 1, N_ROTATIONS - 1, N_ROTATIONS // 2]  # jaw lines within 22.5 degrees of x
    assert not uncovered[across_the_item, 112, 108].any()
    height[100:125, 112:130] = 0.0  # the item pushed away
    assert affordance.grasp_uncovered(height, target, GRIPPER, GRID)[:, 112, 108].all()


def _target_beside_a_tall_item(across_cells: int, item_half: int = 8, slope: float = 0.0008
                               ) -> tuple[np.ndarray, np.ndarray]:
    """A low target at (112, 112) and a taller round-topped item whose centre lies ``across_cells`` from
    the rotation-0 jaw line (the x axis through the target), inside the open jaws."""
    rows, cols = np.indices((GRID.cells, GRID.cells))
    r = np.hypot(rows - (112 + across_cells), cols - (112 + 12))
    height = np.where(r <= item_half, 0.04 - slope * r, 0.0).astype(np.float32)  # m per cell off its top
    target = np.zeros_like(height, bool)
    target[106:119, 106:119] = True
    height[target] = 0.025  # the item's flank is hidden under the target's rim
    return height, target


def test_an_item_off_the_jaw_line_is_shoved_aside_with_the_rule_only():
    """Across the jaw line by more than ``aside`` its top is tolerated; on the line, or with no rule, not;
    a patch larger than one item's top still counts whole."""
    aside, area = 0.021, 0.0028
    off, on = round(aside / CELL) + 2, 3
    height, target = _target_beside_a_tall_item(off)
    strict = affordance.grasp_uncovered(height, target, GRIPPER, GRID)
    shoved = affordance.grasp_uncovered(height, target, GRIPPER, GRID, aside, area)
    assert not strict[0, 112, 112]  # its flank lies between the jaws
    assert shoved[0, 112, 112] and shoved[N_ROTATIONS // 2, 112, 112]
    height, target = _target_beside_a_tall_item(on)
    assert not affordance.grasp_uncovered(height, target, GRIPPER, GRID, aside, area)[0, 112, 112]
    height, target = _target_beside_a_tall_item(off, item_half=22, slope=0.0002)  # wider than one top
    assert not affordance.grasp_uncovered(height, target, GRIPPER, GRID, aside, area)[0, 112, 112]


def test_stamping_the_band_round_a_few_centres_matches_dilating_them():
    """``_refuse_around`` (the cheap form) refuses exactly where a dilation of the centres reaches, at
    the map's edges too."""
    kernel = affordance.band_kernel(GRIPPER, CELL, rotation_angle(3), 0.021)
    points = np.array([[0, 0], [5, 200], [112, 112], [223, 40], [150, 223]])
    centres = np.zeros((GRID.cells, GRID.cells), np.uint8)
    centres[points[:, 0], points[:, 1]] = 1
    ok = np.ones(centres.shape, bool)
    affordance._refuse_around(ok, points, kernel)
    np.testing.assert_array_equal(ok, affordance.dilate(centres, kernel) == 0)


def test_the_recipe_shove_aside_reaches_the_agent():
    from sorter.policy.agent import load_agent

    potatoes = load_recipe("recipes/potatoes-clods.yaml")
    spec = potatoes.policy.shove_aside
    assert load_agent(potatoes).shove_aside == (spec.across, spec.max_area)
    assert load_agent(RECIPE).shove_aside is None and RECIPE.policy.shove_aside is None


def test_a_grasp_under_the_item_lying_on_the_target_is_refused():
    """The salient mask spills onto the item half covering the target; the tool there sits too high."""
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    target = np.zeros_like(height, bool)
    target[100:125, 100:125] = True
    height[target] = 0.025
    height[100:125, 118:135] = 0.05  # an item lying across the target's right part
    top = affordance.dilate(height, np.ones((5, 5), np.uint8))
    level = affordance.grasp_at_target_level(top, height, target)
    assert level[112, 105] and not level[112, 121]
    assert not affordance.grasp_at_target_level(top, height, np.zeros_like(target)).any()


def test_a_push_must_start_on_free_table():
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    _block(height, 112, 112, 7, 0.03)
    free = affordance.push_free(height, GRIPPER, GRID)
    assert not free[112, 112] and free[112, 140] and free[10, 10]


def test_pushes_towards_a_near_edge_are_refused():
    kept = affordance.push_kept_in(GRID, ENVELOPE.push_length)
    row, col = 112, GRID.cells - 40  # 8 cm from the +x edge
    towards, away = 0, N_ROTATIONS // 2
    assert math.isclose(rotation_angle(towards), 0.0)
    assert not kept[towards, row, col] and kept[away, row, col]
    assert kept[:, 112, 112].all()


def test_pushes_that_drive_the_target_against_the_border_are_refused():
    """TCDD pays for pushing the target away from the others; towards the border it is then lost."""
    target = np.zeros((GRID.cells, GRID.cells), bool)
    target[205:216, 105:120] = True  # 1.6 to 3.8 cm from the +y border
    spares = affordance.push_spares_border(GRID, target, ENVELOPE.push_length, GRIPPER)
    towards, along_border = N_ROTATIONS // 4, 0
    assert math.isclose(rotation_angle(towards), math.pi / 2)
    assert not spares[towards, 180, 112]  # reaches the target and drives it out
    assert not spares[towards, 150, 112]  # ends 4.6 cm inside, the target ahead of it nearer still
    assert spares[along_border, 210, 85]  # sideways along the border: it stays as far inside
    assert spares[towards, 180, 170]  # passes beside the target
    assert spares[towards + N_ROTATIONS // 2, 200, 112]  # pulls nothing outwards: away from the border
    middle = np.zeros_like(target)
    middle[105:120, 105:120] = True
    assert affordance.push_spares_border(GRID, middle, ENVELOPE.push_length, GRIPPER).all()
    assert affordance.push_spares_border(GRID, np.zeros_like(target), ENVELOPE.push_length, GRIPPER).all()


def test_the_agent_spares_the_border_for_a_target_and_for_a_cluster():
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    guarded = np.zeros_like(height, bool)
    guarded[205:216, 105:120] = True
    height[guarded] = 0.03
    hm = Heightmaps(np.zeros((*height.shape, 3), np.uint8), height, np.ones_like(guarded), GRID)
    region = Region.around(170, 112, 112)
    i, j = 150 - region.row0, 112 - region.col0  # its stroke would end 4.6 cm inside: kept in, not spared
    side_i, side_j = 200 - region.row0, 85 - region.col0  # along the border, grazing the guarded block
    full = np.ones((2, N_ROTATIONS, 112, 112), bool)
    agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE)
    cluster = type("Cluster", (), {"mask": guarded})()
    for attention in (type("Attention", (), {"mode": "target", "target_mask": guarded, "cluster": None})(),
                      type("Attention", (), {"mode": "cluster", "target_mask": np.ones_like(guarded),
                                             "cluster": cluster})()):
        ok = agent.afford(full, region, hm, attention)
        assert not ok[PUSH, N_ROTATIONS // 4, i, j] and ok[PUSH, 0, side_i, side_j]


def test_the_agent_allows_only_clear_grasps_on_the_target_and_free_push_starts():
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    _block(height, 112, 112, 7, 0.03)
    _block(height, 112, 112 + _pad_offset_cells(), 3, 0.04)
    target = np.zeros_like(height, bool)
    target[105:120, 105:120] = True
    hm = Heightmaps(np.zeros((*height.shape, 3), np.uint8), height, np.ones_like(target), GRID)
    attention = type("Attention", (), {"mode": "target", "target_mask": target})()
    agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE)
    region = Region.around(112, 112, 112)
    ok = agent.afford(np.ones((2, N_ROTATIONS, 112, 112), bool), region, hm, attention)
    i, j = 112 - region.row0, 112 - region.col0
    assert ok[GRASP, N_ROTATIONS // 4, i, j] and not ok[GRASP, 0, i, j]
    assert not ok[GRASP, :, i, j + 20].any()  # off the target
    assert not ok[PUSH, :, i, j].any()  # on top of the block
    assert ok[PUSH, 0, i, j - 25]


def test_a_push_meets_only_what_its_stroke_sweeps():
    cells = np.zeros((GRID.cells, GRID.cells), bool)
    cells[110:115, 150:155] = True  # a small item 8 cm along +x from the column-112 start
    meets = affordance.push_meets(cells, GRIPPER, GRID, ENVELOPE.push_length)
    towards, away, across = 0, N_ROTATIONS // 2, N_ROTATIONS // 4
    assert meets[towards, 112, 112] and not meets[away, 112, 112] and not meets[across, 112, 112]
    assert not meets[towards, 112, 90]  # 13 cm short: the 10 cm stroke stops before it
    assert not meets[towards, 130, 112]  # 3.6 cm to the side: the closed fingers pass it
    assert not affordance.push_meets(np.zeros_like(cells), GRIPPER, GRID, ENVELOPE.push_length).any()


def test_what_crowds_the_target_lies_within_the_gripper_opening():
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    _block(height, 112, 112, 7, 0.03)  # the target
    _block(height, 112, 140, 5, 0.03)  # 5.6 cm from its centre
    _block(height, 112, 190, 5, 0.03)  # 15.6 cm: beyond the 8.5 cm opening from its edge
    target = np.zeros_like(height, bool)
    target[105:120, 105:120] = True
    near = affordance.crowding(height, target, GRIPPER.max_opening, GRID)
    assert near[112, 112] and near[112, 140] and not near[112, 190]
    assert not near[60, 112]  # free table is never crowding
    rng = np.random.default_rng(3)  # the distance transform reaches exactly the cells a disc would
    scattered = rng.random(height.shape) < 0.002
    disc = affordance.disc_kernel(GRIPPER.max_opening, CELL)
    grown = cv2.dilate(scattered.astype(np.uint8), disc) > 0
    assert np.array_equal(affordance.crowding(height, scattered, GRIPPER.max_opening, GRID),
                          grown & (height > affordance.FREE_HEIGHT))
    assert not affordance.crowding(height, np.zeros_like(target), GRIPPER.max_opening, GRID).any()


def test_the_agent_pushes_only_strokes_that_reach_what_crowds_the_target():
    """A stroke through empty table, or through items far from the target, cannot separate it: the agent
    is offered only pushes that reach the target's neighbourhood while there are such pushes."""
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    _block(height, 112, 112, 7, 0.03)
    _block(height, 112, 130, 5, 0.03)
    _block(height, 150, 160, 5, 0.03)  # in the crop, 11 cm from the target
    target = np.zeros_like(height, bool)
    target[105:120, 105:120] = True
    hm = Heightmaps(np.zeros((*height.shape, 3), np.uint8), height, np.ones_like(target), GRID)
    attention = type("Attention", (), {"mode": "target", "target_mask": target, "cluster": None})()
    agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE)
    region = Region.around(112, 112, 112)
    ok = agent.afford(np.ones((2, N_ROTATIONS, 112, 112), bool), region, hm, attention)
    i, j = 112 - region.row0, 112 - region.col0
    assert ok[PUSH, 0, i, j - 25]  # towards the target
    assert not ok[PUSH, N_ROTATIONS // 2, i, j - 25]  # away from it, through nothing
    assert not ok[PUSH, 0, i + 38, j + 20]  # into the far item only
    near = affordance.crowding(height, target, GRIPPER.max_opening, GRID)
    meets = affordance.push_meets(near, GRIPPER, GRID, ENVELOPE.push_length)
    assert not (ok[PUSH] & ~meets[:, region.row0:region.row0 + 112, region.col0:region.col0 + 112]).any()
    cluster = np.zeros_like(target)  # no target shows: the far item is where one may hide
    cluster[145:156, 155:166] = True
    searching = type("Attention", (), {"mode": "cluster", "target_mask": np.ones_like(target),
                                       "cluster": type("Cluster", (), {"mask": cluster})()})()
    ok = agent.afford(np.ones((2, N_ROTATIONS, 112, 112), bool), region, hm, searching)
    reach = affordance.push_meets(cluster, GRIPPER, GRID, ENVELOPE.push_length)
    crop = reach[:, region.row0:region.row0 + 112, region.col0:region.col0 + 112]
    assert ok[PUSH].any() and not (ok[PUSH] & ~crop).any()
    assert not ok[PUSH, 0, i, j - 25]  # into the visible block only, not where one may hide


def test_a_confident_grasp_wins_over_a_higher_push():
    q = np.zeros((2, N_ROTATIONS, 4, 4), np.float32)
    ok = np.ones_like(q, bool)
    q[PUSH, 3, 1, 1] = 0.9
    q[GRASP, 5, 2, 2] = 0.6
    assert greedy_index(q, ok, 0.5) == (GRASP, 5, 2, 2)
    assert greedy_index(q, ok, 0.7) == (PUSH, 3, 1, 1)
    assert greedy_index(q, ok, None) == (PUSH, 3, 1, 1)
    ok[GRASP, 5, 2, 2] = False  # a refused grasp never counts, however confident
    assert greedy_index(q, ok, 0.5) == (PUSH, 3, 1, 1)


def test_the_agent_prefers_grasps_with_room_around_the_pads_but_keeps_the_others_as_a_fallback():
    """Grasps offered at one cell along x and along y only. A wall one cell beyond the +x pad: with a pad
    margin the x jaw line is refused while the y one is left; with a wall beyond the +y pad too (no
    grasp has room), both are allowed again."""
    outer = math.ceil((GRIPPER.max_opening / 2 + GRIPPER.pad_thickness) / CELL)
    target = np.zeros((GRID.cells, GRID.cells), bool)
    target[105:120, 105:120] = True
    attention = type("Attention", (), {"mode": "target", "target_mask": target})()
    agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE, pad_margin=CELL)
    region = Region.around(112, 112, 112)
    i, j = 112 - region.row0, 112 - region.col0
    full = np.zeros((2, N_ROTATIONS, 112, 112), bool)
    full[PUSH] = True
    full[GRASP, [0, N_ROTATIONS // 4], i, j] = True
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    height[target] = 0.03
    height[:, 112 + outer:112 + outer + 10] = 0.04  # wall beyond the +x pad
    hm = Heightmaps(np.zeros((*height.shape, 3), np.uint8), height, np.ones_like(target), GRID)
    ok = agent.afford(full, region, hm, attention)
    assert not ok[GRASP, 0, i, j] and ok[GRASP, N_ROTATIONS // 4, i, j]
    height[112 + outer:112 + outer + 10, :] = 0.04  # and beyond the +y pad: no grasp has room any more
    hm = Heightmaps(np.zeros((*height.shape, 3), np.uint8), height, np.ones_like(target), GRID)
    ok = agent.afford(full, region, hm, attention)
    assert ok[GRASP, 0, i, j] and ok[GRASP, N_ROTATIONS // 4, i, j]
    agent.pad_margin = 0.0
    assert agent.afford(full, region, hm, attention)[GRASP, 0, i, j]


def test_the_cover_check_can_be_turned_off_per_recipe():
    """Coal lumps beside a flat slate stand taller than it: the recipe turns the cover test off."""
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    target = np.zeros_like(height, bool)
    target[104:121, 100:112] = True
    height[target] = 0.01  # a flat plate
    height[100:125, 116:126] = 0.04  # a taller lump beside it, inside the jaw span
    hm = Heightmaps(np.zeros((*height.shape, 3), np.uint8), height, np.ones_like(target), GRID)
    attention = type("Attention", (), {"mode": "target", "target_mask": target})()
    agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE)
    region = Region.around(112, 112, 112)
    full = np.ones((2, N_ROTATIONS, 112, 112), bool)
    i, j = 112 - region.row0, 106 - region.col0
    assert not agent.afford(full, region, hm, attention)[GRASP, 0, i, j]
    agent.cover_check = False
    assert agent.afford(full, region, hm, attention)[GRASP, 0, i, j]
    coal = load_recipe("recipes/coal-slate.yaml")
    assert not coal.policy.cover_check and RECIPE.policy.cover_check


def test_the_cover_is_what_stands_over_the_target_at_its_rim():
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    _block(height, 112, 112, 7, 0.015)  # a lying target brick
    height[100:125, 116:135] = 0.035  # an item lying across its right half
    _block(height, 112, 80, 6, 0.04)  # a taller item 3 cm off its left rim: not on it
    _block(height, 140, 112, 5, 0.015)  # a neighbour no taller than the target: not a cover
    target = (height > 0.01) & (height < 0.02)
    target[130:, :] = False
    cover = affordance.cover_cells(height, target, GRID)
    assert cover[112, 118] and cover[112, 125]  # on the target and just beyond its rim
    assert not cover[112, 134]  # the item's far end, 2.2 cm from the target
    assert not cover[112, 80] and not cover[140, 112] and not cover[target].any()
    free = np.zeros_like(height)
    _block(free, 112, 112, 7, 0.015)
    _block(free, 112, 130, 6, 0.015)
    assert not affordance.cover_cells(free, free > 0.01, GRID).any()
    assert not affordance.cover_cells(height, np.zeros_like(target), GRID).any()


def test_the_agent_pushes_what_covers_a_half_hidden_target_before_its_other_neighbours():
    """A target half under an item mostly admits no grasp; spreading its other neighbours raises TCDD
    but never frees it, so while a stroke can reach the cover only such strokes are offered."""
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    _block(height, 112, 112, 7, 0.015)
    height[100:125, 116:135] = 0.035  # the cover, over the target's right half
    _block(height, 112, 80, 6, 0.03)  # another neighbour, 3 cm off its left rim
    target = np.zeros_like(height, bool)
    target[105:120, 105:116] = True  # the visible half
    hm = Heightmaps(np.zeros((*height.shape, 3), np.uint8), height, np.ones_like(target), GRID)
    attention = type("Attention", (), {"mode": "target", "target_mask": target, "cluster": None})()
    agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE)
    region = Region.around(112, 112, 112)
    ok = agent.afford(np.ones((2, N_ROTATIONS, 112, 112), bool), region, hm, attention)
    cover = affordance.cover_cells(height, target, GRID)
    meets = affordance.push_meets(cover, GRIPPER, GRID, ENVELOPE.push_length)
    crop = meets[:, region.row0:region.row0 + 112, region.col0:region.col0 + 112]
    assert ok[PUSH].any() and not (ok[PUSH] & ~crop).any()
    side = (N_ROTATIONS // 4, 70 - region.row0, 80 - region.col0)  # along the rows, into the neighbour
    assert not ok[PUSH][side]  # it spreads that neighbour and frees nothing
    uncovered = np.zeros_like(height)
    uncovered[target] = 0.015
    _block(uncovered, 112, 80, 6, 0.03)
    free = Heightmaps(hm.color, uncovered, hm.valid, GRID)
    ok = agent.afford(np.ones((2, N_ROTATIONS, 112, 112), bool), region, free, attention)
    assert ok[PUSH][side]  # with the cover gone, pushes at the crowding neighbour return


def test_a_cover_no_free_push_can_reach_leaves_the_pushes_at_the_crowding():
    """A target sunk in a heap that fills the whole crop but its corners: the only free push starts are
    too far off to reach what stands over the target, so the offered pushes must still sweep into its
    crowding neighbours, not anywhere from those starts (the cover was once tested over the whole grid
    with any start, which let strokes that move nothing through)."""
    rows, cols = np.mgrid[:GRID.cells, :GRID.cells]
    height = np.where(np.hypot(rows - 112, cols - 112) * CELL <= 0.145, 0.03, 0.0).astype(np.float32)
    target = (np.abs(rows - 112) <= 7) & (np.abs(cols - 112) <= 7)
    height[target] = 0.015
    hm = Heightmaps(np.zeros((*height.shape, 3), np.uint8), height, np.ones_like(target), GRID)
    attention = type("Attention", (), {"mode": "target", "target_mask": target, "cluster": None})()
    agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE)
    region = Region.around(112, 112, 112)
    ok = agent.afford(np.ones((2, N_ROTATIONS, 112, 112), bool), region, hm, attention)

    def crop(masks: np.ndarray) -> np.ndarray:
        return masks[:, region.row0:region.row0 + 112, region.col0:region.col0 + 112]

    cover = crop(affordance.push_meets(affordance.cover_cells(height, target, GRID), GRIPPER, GRID,
                                       ENVELOPE.push_length))
    crowd = crop(affordance.push_meets(affordance.crowding(height, target, GRIPPER.max_opening, GRID),
                                       GRIPPER, GRID, ENVELOPE.push_length))
    free = crop(affordance.push_free(height, GRIPPER, GRID)[None])
    assert cover.any() and not (cover & free).any()  # reachable only from starts on the heap
    assert ok[PUSH].any() and not (ok[PUSH] & ~crowd).any()


SLIVER_AREA = 2.6e-4  # m^2: 65 cells, the area measured on toy-blocks (README, "no grasp at a sliver")


def test_a_sliver_of_a_target_is_not_grasped_below_the_recipe_area():
    """Less of the target showing than ``policy.grasp_min_area`` refuses every grasp (pushes stay); as
    much or more leaves the grasps the other masks allow. The shipped recipes leave it off, and a
    recipe's value reaches the agent."""
    from sorter.policy.agent import load_agent

    for product in ("toy-blocks", "mushrooms-stones", "coal-slate", "potatoes-clods"):
        assert load_recipe(f"recipes/{product}.yaml").policy.grasp_min_area == 0
    policy = RECIPE.policy.model_copy(update={"grasp_min_area": SLIVER_AREA})
    strict = RECIPE.model_copy(update={"policy": policy})
    assert load_agent(strict).grasp_min_area == SLIVER_AREA
    area = SLIVER_AREA
    cells = math.ceil(area / CELL ** 2)  # the fewest cells showing the area
    agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE, grasp_min_area=area)
    region = Region.around(112, 112, 112)
    for showing, grasped in ((cells - 1, False), (cells, True)):
        hm, attention = _showing(showing)
        ok = agent.afford(np.ones((2, N_ROTATIONS, 112, 112), bool), region, hm, attention)
        assert ok[GRASP].any() == grasped, f"{showing} cells showing"
        assert ok[PUSH].any()


def test_a_sliver_that_pushes_do_not_free_is_grasped_after_the_patience():
    """A cover that will not come off must not cost the batch: after ``SLIVER_PATIENCE`` pushes in a row
    at a sliver its grasps return, and a view of a target showing enough starts the count again."""
    area = SLIVER_AREA
    agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE, grasp_min_area=area)
    region = Region.around(112, 112, 112)
    full = np.ones((2, N_ROTATIONS, 112, 112), bool)
    sliver = _showing(math.ceil(area / CELL ** 2) - 1)
    rng = np.random.default_rng(0)
    for _ in range(2):
        for _ in range(SLIVER_PATIENCE):
            assert not agent.afford(full, region, *sliver)[GRASP].any()
            assert agent.decide(sliver[1], sliver[0], rng).action.kind == ActionKind.PUSH
        assert agent.afford(full, region, *sliver)[GRASP].any()
        agent.decide(_showing(200)[1], _showing(200)[0], rng)  # the target shows: the count restarts


def _showing(cells: int) -> tuple[Heightmaps, object]:
    """A target block with ``cells`` of its top in the salient mask and a neighbour for pushes."""
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    _block(height, 112, 112, 7, 0.02)
    _block(height, 112, 60, 6, 0.02)
    target = np.zeros_like(height, bool)
    square = target[104:121, 104:121]  # a view: the block's top, filled row by row
    square.flat[:cells] = True
    hm = Heightmaps(np.zeros((*height.shape, 3), np.uint8), height, np.ones_like(target), GRID)
    crop = crop_around((112.0, 112.0), GRID.cells)
    return hm, Attention("target", "test", target, (112, 112), GRID.center_of(112, 112), crop, [], None,
                         np.zeros(height.shape, np.float32))
