"""Motion time of the real arm and gripper, modelled from the recipe's speeds and accelerations.

The arm itself is not simulated; each primitive's Outcome.duration is the sum of its moves, each a
trapezoidal (or, when short, triangular) velocity profile along a straight tool path.
"""

from __future__ import annotations

import math

import numpy as np

from sorter.recipe import Recipe

GRIPPER_SPEED = 0.15  # m/s jaw travel; Robotiq 2F-85 datasheet, 20-150 mm/s (fastest setting)
GRIPPER_SETTLE = 0.10  # s for the gripper to report its final state after stopping (object detection)
WRIST_SPEED = math.pi  # rad/s, UR wrist joint speed limit (UR5e datasheet: 180 deg/s)


def trapezoid_time(distance: float, speed: float, acceleration: float) -> float:
    """Seconds to travel ``distance`` from rest to rest with the given speed and acceleration limits."""
    d = abs(distance)
    if d <= 0.0:
        return 0.0
    if d < speed * speed / acceleration:
        return 2.0 * math.sqrt(d / acceleration)
    return d / speed + speed / acceleration


class MotionModel:
    """Durations of the arm's and gripper's moves for one recipe."""

    def __init__(self, recipe: Recipe):
        self.speed = recipe.robot.speed
        self.acceleration = recipe.robot.acceleration
        self.contact_speed = recipe.robot.contact_speed

    def free_move(self, start: np.ndarray, end: np.ndarray, yaw_change: float = 0.0) -> float:
        """A linear tool move at full speed; the wrist turns meanwhile and may take longer."""
        linear = trapezoid_time(float(np.linalg.norm(np.asarray(end) - np.asarray(start))), self.speed,
                                self.acceleration)
        return max(linear, abs(yaw_change) / WRIST_SPEED)

    def contact_move(self, distance: float) -> float:
        """A slow move that may touch things (descents, pushes) at the recipe's contact speed."""
        return trapezoid_time(distance, self.contact_speed, self.acceleration)

    def jaw(self, travel: float) -> float:
        """Opening or closing the gripper by ``travel`` metres, including the status settle time."""
        return abs(travel) / GRIPPER_SPEED + GRIPPER_SETTLE
