"""Simulator ground truth: object states, visible and amodal masks, occlusion rate, TCDD.

Everything here reads the simulation and never changes it, so the same numbers can score a simulated
episode and be compared with what perception and the policy believed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sorter.cell.sim.cell import SimCell


@dataclass(frozen=True)
class ObjectState:
    """One object's identity and where it is (robot base frame, metres; quaternion w, x, y, z)."""

    id: int
    name: str
    is_impurity: bool
    position: np.ndarray
    quat: np.ndarray
    in_workspace: bool
    in_bin: bool
    held: bool


def tcdd(target: np.ndarray, others: np.ndarray, eta: float) -> float:
    """Target-centric dispersion degree (paper 2, eqs. 2-3): mean of min(|p_t - p_j|, eta) / eta.

    ``others`` holds the centres of the other K-1 objects; an empty scene counts as fully dispersed.
    """
    if len(others) == 0:
        return 1.0
    dist = np.linalg.norm(np.asarray(others, float) - np.asarray(target, float), axis=1)
    return float(np.minimum(dist, eta).sum() / (len(others) * eta))


class GroundTruth:
    """What the simulator knows about the current scene of one SimCell."""

    def __init__(self, cell: SimCell):
        self._cell = cell

    def objects(self) -> list[ObjectState]:
        """Every object of the scene, in id order (those in the bin and fallen off included)."""
        return self._cell.object_states()

    def object(self, obj_id: int) -> ObjectState:
        for state in self.objects():
            if state.id == obj_id:
                return state
        raise KeyError(f"no object with id {obj_id} in the scene")

    def visible_mask(self) -> np.ndarray:
        """HxW int32 object ids (0 = table, bin, gripper or nothing) of the camera's last frame.

        Before any frame was read, the mask of the current state (what a frame would show now).
        """
        return self._cell.visible_ids().copy()

    def amodal_mask(self, obj_id: int) -> np.ndarray:
        """HxW bool: pixels whose camera rays hit the object when nothing else is in the way."""
        return self._cell.amodal(obj_id)

    def occlusion_rate(self, obj_id: int) -> float:
        """1 - visible / amodal pixels; 1.0 when the object is entirely outside the image."""
        amodal = int(self.amodal_mask(obj_id).sum())
        if amodal == 0:
            return 1.0
        visible = int((self.visible_mask() == obj_id).sum())
        return float(max(0.0, 1.0 - visible / amodal))

    def tcdd(self, obj_id: int, eta: float | None = None) -> float:
        """TCDD of ``obj_id`` among the objects lying in the workspace (paper 2, eq. 3).

        ``eta`` defaults to the recipe gripper's maximum opening.
        """
        eta = self._cell.recipe.gripper.max_opening if eta is None else eta
        states = self.objects()
        target = next((s for s in states if s.id == obj_id), None)
        if target is None:
            raise KeyError(f"no object with id {obj_id} in the scene")
        others = [s.position for s in states if s.in_workspace and s.id != obj_id]
        return tcdd(target.position, np.array(others).reshape(-1, 3), eta)

    def impurities_remaining(self) -> int:
        """Impurities still lying in the workspace (not in the bin, not held, not fallen off)."""
        return sum(1 for s in self.objects() if s.is_impurity and s.in_workspace)

    def impurity_ids(self) -> list[int]:
        return [s.id for s in self.objects() if s.is_impurity]
