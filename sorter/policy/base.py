"""The policy interface shared by the learned push-grasp agents and the scripted heuristic."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from sorter.cell.base import Action, ActionKind


@dataclass(frozen=True)
class Decision:
    """The action a policy chose and why: its Q values and where in the heightmap it points.

    ``pixel`` is (rotation index, row, col) in the full workspace heightmap; ``q_map`` is the chosen
    primitive's Q map over the full workspace grid for display (max over rotations), or None.
    """

    action: Action
    q_push: float
    q_grasp: float
    pixel: tuple[int, int, int]
    q_map: np.ndarray | None = None

    @property
    def kind(self) -> ActionKind:
        return self.action.kind


class Policy(abc.ABC):
    """Chooses one push or grasp from the attention result and the heightmaps of the current frame."""

    name: str = "policy"

    @abc.abstractmethod
    def decide(self, attention, heightmaps, rng: np.random.Generator) -> Decision:
        """Return the next action; ``attention`` is a perception.attention result (mode target|cluster)."""
