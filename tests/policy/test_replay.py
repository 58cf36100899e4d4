"""Prioritized replay: transitions link to the observation that followed them, the ring forgets the
oldest, rank-based sampling favours large TD errors, and the whole buffer round-trips for resumes."""

from __future__ import annotations

import numpy as np
import pytest

from sorter.policy.network import Region
from sorter.policy.replay import Observation, ReplayBuffer, Step

SHAPE = (8, 8)


def _obs(value: int) -> Observation:
    return Observation(np.full((3, *SHAPE), value, np.uint8), np.full(SHAPE, value / 100, np.float16),
                       np.zeros(SHAPE, np.uint8), Region(value, 0, 4))


def _step(reward: float = 0.0, terminal: bool = False) -> Step:
    return Step(kind=1, rotation=3, row=5, col=6, reward=reward, terminal=terminal)


def test_transition_waits_for_its_next_observation():
    rb = ReplayBuffer(10, SHAPE)
    a = rb.add(_obs(1), _step())
    assert len(rb) == 0
    b = rb.add(_obs(2), _step(1.0, terminal=True))
    assert set(rb.ready()) == {a, b}
    assert rb.observation(rb.next_slot(a)).region.row0 == 2
    batch = rb.sample(2, np.random.default_rng(0))
    assert dict(zip(batch.slots, batch.has_next, strict=True)) == {a: True, b: False}


def test_last_view_closes_a_transition_without_adding_one():
    rb = ReplayBuffer(10, SHAPE)
    a = rb.add(_obs(1), _step())
    rb.add(_obs(2), None)
    assert list(rb.ready()) == [a]


def test_ring_overwrites_the_oldest_steps():
    rb = ReplayBuffer(4, SHAPE)
    for k in range(6):
        rb.add(_obs(k), _step())
    ready = rb.ready()
    rows = sorted(rb.observation(s).region.row0 for s in ready)
    assert rows == [2, 3, 4]  # 5 still waits for its next observation
    assert rb.size == 4


def test_rank_based_sampling_prefers_large_td_errors():
    rb = ReplayBuffer(50, SHAPE)
    for k in range(41):
        rb.add(_obs(k), _step() if k < 40 else None)
    slots = rb.ready()
    rb.update_priorities(slots, np.linspace(0.0, 1.0, len(slots)))
    rng = np.random.default_rng(1)
    counts = np.zeros(50)
    for _ in range(400):
        for s in rb.sample(4, rng).slots:
            counts[s] += 1
    assert counts[slots[-5:]].sum() > 4 * counts[slots[:5]].sum()
    assert counts[slots[:5]].sum() > 0  # stochastic: low priorities are still replayed


def test_importance_weights_are_at_most_one():
    rb = ReplayBuffer(20, SHAPE)
    for k in range(11):
        rb.add(_obs(k), _step() if k < 10 else None)
    w = rb.sample(5, np.random.default_rng(3)).weights
    assert np.all(w > 0) and np.all(w <= 1.0 + 1e-6)


def test_state_round_trip_restores_everything():
    rb = ReplayBuffer(6, SHAPE)
    for k in range(8):
        rb.add(_obs(k), _step(reward=k / 10))
    copy = ReplayBuffer(6, SHAPE)
    copy.load_state_dict(rb.state_dict())
    assert list(copy.ready()) == list(rb.ready())
    assert copy.cursor == rb.cursor and np.array_equal(copy.reward, rb.reward)
    a = rb.sample(3, np.random.default_rng(5))
    b = copy.sample(3, np.random.default_rng(5))
    assert np.array_equal(a.slots, b.slots)


def test_shape_mismatch_on_load_is_refused():
    with pytest.raises(ValueError, match="shape"):
        ReplayBuffer(6, SHAPE).load_state_dict(ReplayBuffer(7, SHAPE).state_dict())


def test_sampling_an_empty_buffer_says_so():
    with pytest.raises(ValueError, match="no complete transition"):
        ReplayBuffer(4, SHAPE).sample(2, np.random.default_rng(0))
