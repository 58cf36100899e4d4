"""Prioritized experience replay with stochastic rank-based prioritisation (Schaul et al. 2016).

Steps are stored in one ring: each slot holds an observation (compact 4 mm maps and the region the policy
could act in) and, when an action followed it, that action and its reward. A transition's next state is
the following slot, so a non-terminal step costs one observation, and a scene reset stores one extra
observation (the last view of the old scene) without an action. Labels are never stored: the learner
recomputes ``r + gamma * max Q'(s')`` from the target network each time a transition is replayed and
writes the new TD error back as its priority.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sorter.policy.network import Region

RANK_ALPHA = 0.7  # Schaul et al. 2016, rank-based variant
RANK_BETA = 0.5  # Schaul et al. 2016, initial importance-sampling exponent for the rank-based variant


@dataclass(frozen=True)
class Observation:
    """What the learner needs of one view: pooled maps (see ``network.pool_maps``) and the action region."""

    rgb: np.ndarray  # (3, h, w) uint8
    height: np.ndarray  # (h, w) float16, metres
    mask: np.ndarray  # (h, w) uint8, 255 = target
    region: Region


@dataclass(frozen=True)
class Step:
    """An executed action: primitive (0 push, 1 grasp), rotation index, heightmap cell, reward."""

    kind: int
    rotation: int
    row: int
    col: int
    reward: float
    terminal: bool


@dataclass(frozen=True)
class Batch:
    """Sampled transitions: ring slots, importance weights and what the learner needs of each."""

    slots: np.ndarray
    weights: np.ndarray
    kind: np.ndarray
    rotation: np.ndarray
    row: np.ndarray
    col: np.ndarray
    reward: np.ndarray
    has_next: np.ndarray


class ReplayBuffer:
    """A fixed-capacity ring of observations with optional actions; see the module docstring."""

    def __init__(self, capacity: int, map_shape: tuple[int, int]):
        if capacity < 2:
            raise ValueError("replay capacity must be at least 2")
        h, w = map_shape
        self.capacity = capacity
        self.rgb = np.zeros((capacity, 3, h, w), np.uint8)
        self.height = np.zeros((capacity, h, w), np.float16)
        self.mask = np.zeros((capacity, h, w), np.uint8)
        self.region = np.zeros((capacity, 3), np.int32)
        self.kind = np.zeros(capacity, np.int8)
        self.rotation = np.zeros(capacity, np.int8)
        self.cell = np.zeros((capacity, 2), np.int32)
        self.reward = np.zeros(capacity, np.float32)
        self.has_action = np.zeros(capacity, bool)
        self.terminal = np.zeros(capacity, bool)
        self.linked = np.zeros(capacity, bool)
        self.priority = np.zeros(capacity, np.float32)
        self.greedy = np.full((capacity, 4), -1, np.int32)
        self.cursor = 0
        self.size = 0

    def add(self, obs: Observation, step: Step | None,
            greedy: tuple[int, int, int, int] | None = None) -> int:
        """Store an observation and the action taken from it (None for a last view); returns its slot.

        The observation added right after a non-terminal step is that step's next state, so callers add
        observations in the order they were seen. ``greedy`` is the (primitive, rotation, row, col) the
        online network rated best in this observation, used for Double-DQN targets.
        """
        slot = self.cursor
        if self.size:
            self.linked[(slot - 1) % self.capacity] = True
        self.rgb[slot], self.height[slot], self.mask[slot] = obs.rgb, obs.height, obs.mask
        self.region[slot] = (obs.region.row0, obs.region.col0, obs.region.size)
        self.has_action[slot] = step is not None
        self.linked[slot] = False
        self.terminal[slot] = step is not None and step.terminal
        self.greedy[slot] = greedy if greedy is not None else (-1, -1, -1, -1)
        if step is not None:
            self.kind[slot], self.rotation[slot] = step.kind, step.rotation
            self.cell[slot] = (step.row, step.col)
            self.reward[slot] = step.reward
            self.priority[slot] = max(float(self.priority.max(initial=0.0)), 1.0)
        self.cursor = (slot + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return slot

    def ready(self) -> np.ndarray:
        """Slots holding a replayable transition: an action whose next state, if it needs one, is stored."""
        return np.flatnonzero(self.has_action & (self.terminal | self.linked))

    def __len__(self) -> int:
        return len(self.ready())

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = RANK_BETA) -> Batch:
        """Draw ``batch_size`` distinct transitions with P(rank k) proportional to k^-alpha."""
        slots = self.ready()
        if len(slots) == 0:
            raise ValueError("the replay buffer holds no complete transition yet")
        order = slots[np.argsort(-self.priority[slots], kind="stable")]
        p = 1.0 / np.arange(1, len(order) + 1) ** RANK_ALPHA
        p /= p.sum()
        k = min(batch_size, len(order))
        picks = rng.choice(len(order), size=k, replace=False, p=p)
        w = (len(order) * p[picks]) ** (-beta)
        w /= (len(order) * p[-1]) ** (-beta)
        chosen = order[picks]
        return Batch(chosen, w.astype(np.float32), self.kind[chosen].astype(np.int64),
                     self.rotation[chosen].astype(np.int64), self.cell[chosen, 0], self.cell[chosen, 1],
                     self.reward[chosen], ~self.terminal[chosen])

    def update_priorities(self, slots: np.ndarray, td_errors: np.ndarray) -> None:
        self.priority[slots] = np.abs(td_errors).astype(np.float32)

    def observation(self, slot: int) -> Observation:
        r = self.region[slot]
        return Observation(self.rgb[slot], self.height[slot], self.mask[slot], Region(*map(int, r)))

    def next_slot(self, slot: int) -> int:
        return (int(slot) + 1) % self.capacity

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every array plus cursor and size, for a safetensors checkpoint."""
        names = ("rgb", "height", "mask", "region", "kind", "rotation", "cell", "reward", "has_action",
                 "terminal", "linked", "priority", "greedy")
        out = {f"replay.{n}": getattr(self, n) for n in names}
        out["replay.cursor_size"] = np.array([self.cursor, self.size], np.int64)
        return out

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        for key, value in arrays.items():
            if key == "replay.cursor_size":
                self.cursor, self.size = int(value[0]), int(value[1])
            elif key.startswith("replay."):
                target = getattr(self, key.removeprefix("replay."))
                if target.shape != value.shape:
                    raise ValueError(f"{key} has shape {value.shape}, expected {target.shape}")
                target[...] = value
