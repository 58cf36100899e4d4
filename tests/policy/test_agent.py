"""The agent: actions stay inside the valid cells, model files round-trip, broken files are named,
and a known-answer problem (one brick alone on the table) is learned from scratch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sorter.cell.base import ActionKind
from sorter.cell.safety import SafetyEnvelope
from sorter.errors import ModelFileError
from sorter.geometry import CROP_CELLS
from sorter.perception.heightmap import Heightmaps
from sorter.policy.agent import (
    GRASP,
    METHODS,
    Exploration,
    Learner,
    PushGraspAgent,
    load_agent,
    load_model,
    observe,
    save_model,
)
from sorter.policy.network import QNetwork, Region
from sorter.policy.replay import ReplayBuffer, Step
from sorter.recipe import load_recipe
from tests.policy.synthetic import brick_scene, grasp_succeeds

RECIPE = load_recipe("recipes/toy-blocks.yaml")
ENVELOPE = SafetyEnvelope.from_recipe(RECIPE)
GRID = ENVELOPE.grid


def _clutter(rng: np.random.Generator) -> Heightmaps:
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    for _ in range(12):
        r, c = rng.integers(0, GRID.cells - 15, 2)
        height[r:r + 15, c:c + 15] = rng.uniform(0.02, 0.06)
    color = rng.integers(0, 255, (GRID.cells, GRID.cells, 3), dtype=np.uint8)
    return Heightmaps(color, height, np.ones_like(height, bool), GRID)


@pytest.mark.parametrize("explore", [0.0, 1.0])
def test_chosen_actions_stay_in_the_region_and_pass_the_safety_envelope(explore):
    """Random networks, regions at every border and corner: every action is inside and allowed."""
    rng = np.random.default_rng(7)
    corners = [(0, 0), (0, 112), (112, 0), (112, 112), (56, 0), (30, 70)]
    for k, (row0, col0) in enumerate(corners * 3):
        torch.manual_seed(k)
        agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE,
                               exploration=Exploration(epsilon=explore, grasp_share=0.5))
        hm = _clutter(rng)
        region = Region(row0, col0, CROP_CELLS)
        mask = np.zeros(hm.height.shape, bool)
        mask[row0 + 40:row0 + 60, col0 + 40:col0 + 60] = True
        d = agent.decide_on(observe(hm, region, mask), hm, rng)
        rot, row, col = d.pixel
        assert row0 <= row < row0 + CROP_CELLS and col0 <= col < col0 + CROP_CELLS
        verdict = ENVELOPE.check(d.action, hm.height)
        assert verdict.allowed or verdict.refusal == "reject-bin path blocked", verdict.describe()
        assert not verdict.adjusted or "z raised" not in verdict.detail
        assert ENVELOPE.contains(d.action)
        assert np.isfinite(d.q_push) and np.isfinite(d.q_grasp)


def test_save_load_round_trip_gives_identical_q_maps(tmp_path):
    torch.manual_seed(3)
    net = QNetwork().eval()
    path = tmp_path / "m.safetensors"
    sha = save_model(path, net, METHODS["ours"], {"iterations": "0"})
    loaded, meta, sha2 = load_model(path)
    assert sha == sha2 and meta["method"] == "ours"
    hm = _clutter(np.random.default_rng(1))
    obs = observe(hm, Region(50, 60, CROP_CELLS), hm.height > 0.03)
    a = PushGraspAgent(net, METHODS["ours"], ENVELOPE).q_values(obs)
    b = PushGraspAgent(loaded, METHODS["ours"], ENVELOPE).q_values(obs)
    assert np.array_equal(a, b)


def test_missing_and_corrupt_model_files_are_named(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelFileError, match="nope.safetensors"):
        load_agent(RECIPE, "ours", missing)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(ModelFileError, match="bad.safetensors"):
        load_agent(RECIPE, "ours", bad)
    other = tmp_path / "vpg.safetensors"
    save_model(other, QNetwork(), METHODS["vpg"])
    with pytest.raises(ModelFileError, match="holds 'vpg' weights"):
        load_agent(RECIPE, "ours", other)
    assert load_agent(RECIPE, "s-vpg", other).name == "s-vpg"


def _brick_obs(scene):
    return observe(scene.heightmaps, Region.around(*scene.centre_rc, CROP_CELLS), scene.mask)


def _greedy_success(agent, seed: int, n: int) -> float:
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(n):
        s = brick_scene(GRID, rng)
        wins += grasp_succeeds(s, agent.decide_on(_brick_obs(s), s.heightmaps, rng).action)
    return wins / n


def test_known_answer_single_brick_is_learned():
    """One brick alone: only a centred grasp across its short side pays. Untrained the greedy policy
    never finds it (measured 0/40); after 120 steps of trial and error it does (measured 0.93-1.0)."""
    torch.manual_seed(0)
    net = QNetwork()
    agent = PushGraspAgent(net, METHODS["ours"], ENVELOPE, exploration=Exploration(0.5, grasp_share=0.7))
    assert _greedy_success(agent.__class__(net.eval(), agent.method, ENVELOPE), 1, 20) <= 0.1
    learner = Learner(net, ENVELOPE, lr=1e-3, batch_size=4)
    replay = ReplayBuffer(500, (GRID.cells // 2, GRID.cells // 2))
    rng = np.random.default_rng(0)
    for it in range(120):
        scene = brick_scene(GRID, rng)
        obs = _brick_obs(scene)
        net.eval()
        d = agent.decide_on(obs, scene.heightmaps, rng)
        net.train()
        ok = grasp_succeeds(scene, d.action)
        kind = GRASP if d.kind is ActionKind.GRASP else 0
        replay.add(obs, Step(kind, *d.pixel, reward=float(ok), terminal=True))
        if it >= 8:
            learner.step(replay, rng)
            learner.step(replay, rng)
        agent.exploration.epsilon = max(0.1, 0.5 * (1 - it / 120))
    greedy = PushGraspAgent(net.eval(), METHODS["ours"], ENVELOPE)
    assert _greedy_success(greedy, 1, 20) >= 0.8


def test_labels_use_the_target_network_at_the_stored_greedy_action():
    """r + 0.5 Q'(s', a*) with a* stored with s'; without a stored a*, r + 0.5 max Q'(s')."""
    torch.manual_seed(5)
    net = QNetwork().eval()
    learner = Learner(net, ENVELOPE)
    hm = _clutter(np.random.default_rng(2))
    region = Region(40, 50, CROP_CELLS)
    obs = observe(hm, region, hm.height > 0.03)
    agent = PushGraspAgent(net, METHODS["ours"], ENVELOPE)
    q = agent.q_values(obs)
    ok = agent.allowed(obs)
    replay = ReplayBuffer(8, (GRID.cells // 2, GRID.cells // 2))
    replay.add(obs, Step(0, 2, 100, 100, reward=0.5, terminal=False))
    replay.add(obs, Step(GRASP, 3, 90, 95, reward=1.0, terminal=True), greedy=(GRASP, 3, 90, 95))
    batch = replay.sample(2, np.random.default_rng(0))
    labels = dict(zip(batch.slots, learner.labels(replay, batch), strict=True))
    assert labels[0] == pytest.approx(0.5 + 0.5 * q[GRASP, 3, 90 - 40, 95 - 50], abs=1e-4)
    assert labels[1] == pytest.approx(1.0)
    replay.greedy[1] = -1
    labels = dict(zip(batch.slots, learner.labels(replay, batch), strict=True))
    assert labels[0] == pytest.approx(0.5 + 0.5 * q[ok].max(), abs=1e-4)


def _search_and_sighting():
    """A cluster search around cell (100, 100) with Algorithm 1's all-one mask over its crop, and a
    sighting (a small area a guard saw unlike the product) inside the crop."""
    from sorter.perception.attention import Attention, crop_around

    crop = crop_around((100.0, 100.0), GRID.cells)
    all_one = np.zeros((GRID.cells, GRID.cells), bool)
    all_one[crop.slices] = True
    sighting = np.zeros_like(all_one)
    sighting[96:104, 110:116] = True
    search = Attention("cluster", "test", all_one, (100, 100), (0.6, 0.0), crop, [], None,
                       np.zeros(all_one.shape, np.float32))
    return search, sighting


def test_a_cluster_search_with_a_sighting_feeds_the_sighting_as_the_mask():
    """Where a guard saw something unlike the product, the policy is shown that area as its mask (it
    pushes around it as around a target) and still may not grasp; without occluded-region inference
    (no-oi) and without a sighting the crop keeps Algorithm 1's all-one mask."""
    from dataclasses import replace

    from sorter.policy.agent import region_and_mask

    search, sighting = _search_and_sighting()
    sighted = replace(search, sighting=sighting)
    _, mask = region_and_mask(METHODS["ours"], sighted, GRID)
    assert np.array_equal(mask, sighting)
    for method, att in ((METHODS["ours"], search), (METHODS["no-oi"], sighted)):
        region, mask = region_and_mask(method, att, GRID)
        rows = slice(region.row0, region.row0 + region.size)
        cols = slice(region.col0, region.col0 + region.size)
        assert mask[rows, cols].all() and mask.sum() == CROP_CELLS ** 2
    agent = PushGraspAgent(QNetwork(), METHODS["ours"], ENVELOPE)
    obs = agent.observe(sighted, _clutter(np.random.default_rng(0)))
    assert not agent.allowed(obs, sighted)[GRASP].any(), "a search never grasps"


def test_a_push_at_a_sighting_strips_the_top_layer_and_other_pushes_run_at_the_table():
    """With a sighting the chosen push runs at ``strip``'s height; a search without one, at the push
    height ``to_action`` gives, unless the recipe strips every search (``policy.search_push: strip``).
    Target-mode pushes never strip."""
    from dataclasses import replace

    from sorter.policy.agent import PUSH, strip, to_action

    search, sighting = _search_and_sighting()
    target = replace(search, mode="target", target_mask=sighting)
    raised = 0
    for seed in range(4):
        hm = _clutter(np.random.default_rng(seed))
        for strips_all in (False, True):
            torch.manual_seed(seed)
            agent = PushGraspAgent(QNetwork().eval(), METHODS["ours"], ENVELOPE, grasp_confidence=None,
                                   strip_searches=strips_all)
            for att in (search, replace(search, sighting=sighting), target):
                d = agent.decide(att, hm, np.random.default_rng(seed))
                if d.kind is not ActionKind.PUSH:
                    continue
                plain = to_action(PUSH, *d.pixel, hm, ENVELOPE)
                stripped = att.mode == "cluster" and (att.sighting is not None or strips_all)
                assert d.action == (strip(plain, hm, ENVELOPE.push_length) if stripped else plain)
                raised += d.action.z > plain.z
    assert raised >= 4, "in clutter 2 to 6 cm high most stripping pushes run above the table"


def _push_at(rot: int, row: int, col: int):
    from sorter.cell.base import Action
    from sorter.policy.base import Decision

    return Decision(Action(ActionKind.PUSH, 0.5, 0.0, 0.01, 0.0), 0.0, 0.0, (rot, row, col))


def test_a_push_that_only_rocks_an_item_is_not_repeated():
    """A push that changed fewer than ``STALL_CELLS`` height-map cells (potatoes rocking back at the end
    of a stroke change more than VPG's 300) is remembered as ineffective: it, its neighbouring rotations
    and cells within ``REPEAT_RADIUS`` are refused next, other pushes are not; a push that moved the
    heap forgets them. Traced on a potato batch: one futile push at the same spot took 25 actions."""
    from sorter.policy.agent import PUSH, REPEAT_RADIUS, STALL_CELLS, RepeatGuard
    from sorter.policy.rewards import CHANGE_CELLS

    rocked = 500
    assert CHANGE_CELLS < rocked < STALL_CELLS
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    height[100:130, 100:130] = 0.04
    guard, region = RepeatGuard(), Region.whole(GRID)
    ok = np.ones((2, 16, GRID.cells, GRID.cells), bool)
    guard.update(height)
    guard.remember(_push_at(2, 80, 54))
    height = height.copy()
    height[0:5, 0:rocked // 5] = 0.02  # one item rocked: 500 cells changed by 2 cm
    guard.update(height)
    out = guard.block(ok, region)
    assert not out[PUSH, [1, 2, 3], 80, 54].any()
    assert not out[PUSH, 2, 80 + REPEAT_RADIUS, 54 - REPEAT_RADIUS]
    assert out[PUSH, 2, 80 + REPEAT_RADIUS + 1, 54] and out[PUSH, 5, 80, 54] and out[GRASP, 2, 80, 54]
    guard.remember(_push_at(9, 150, 150))
    height = height.copy()
    height[130:160, 100:200] = 0.05  # the heap moved: 3000 cells
    guard.update(height)
    assert guard.block(ok, region).all()
