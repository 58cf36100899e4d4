"""The simulated robot: push and grasp primitives on the physical gripper, timed like the real arm.

The tool centre point (TCP) is the centre between the fingertips. ``Action.z`` is the fingertip height
for the grasp or push; it is raised to the table plus TIP_CLEARANCE when lower, and a descent stops
early when anything (table, object) is touched. Every primitive ends with the tool out of the camera's
view, as the real cell must before its next image. Travel through free space (to above the goal, back
home) is not simulated as a path, but its modelled time is: the physics runs on for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sorter.cell.base import (
    Action,
    ActionKind,
    Outcome,
    ProtectiveStop,
    Robot,
    RobotDisconnected,
    RobotError,
    RobotStatus,
)
from sorter.cell.grippers import HELD_MIN_WIDTH
from sorter.cell.sim.gripper import DESCENT_SPEED, GripperRig
from sorter.cell.sim.motion import MotionModel
from sorter.geometry import PUSH_LENGTH, wrap_angle

if TYPE_CHECKING:
    from sorter.cell.sim.cell import SimCell

TIP_CLEARANCE = 0.002  # m, lowest fingertip height above the table
APPROACH_CLEARANCE = 0.015  # m above the highest object under the gripper where guarded descents start
SLIP_AT = 0.3  # share of the way to the bin where an injected slip happens
SLIP_OPENING = 0.015  # m the jaws give way by in an injected slip
RELEASE_WAIT = 0.5  # s of physics for a released item to come to rest
APPROACH_OFFSET = 0.05  # m above the goal where the real arm slows to contact speed


@dataclass
class _Run:
    """Bookkeeping of one primitive: modelled arm time so far, and where an injected stop cuts it."""

    duration: float = 0.0
    stop_fraction: float | None = None


class SimRobot(Robot):
    """Implements ``sorter.cell.base.Robot`` on the simulated cell; connected from the start."""

    def __init__(self, cell: SimCell):
        self._cell = cell
        self._status = RobotStatus.READY
        self._tool = np.asarray(cell.recipe.robot.home, float)
        self._yaw = 0.0
        self._motion = MotionModel(cell.recipe)
        self.last_held: set[int] = set()  # ids of the objects between the jaws after the last grasp

    def restart(self) -> None:
        """A new scene: the tool waits at home, ready, holding nothing."""
        if self._status != RobotStatus.DISCONNECTED:
            self._status = RobotStatus.READY
        self._tool = np.asarray(self._cell.recipe.robot.home, float)
        self._yaw = 0.0
        self.last_held = set()

    def connect(self) -> None:
        if self._status == RobotStatus.DISCONNECTED:
            self._status = RobotStatus.READY

    def disconnect(self) -> None:
        self._status = RobotStatus.DISCONNECTED

    def status(self) -> RobotStatus:
        return self._status

    def stop(self) -> None:
        """Motion is synchronous in the simulation, so there is never a move to stop."""

    def recover(self) -> None:
        if self._status == RobotStatus.DISCONNECTED:
            raise RobotDisconnected("the simulated robot is disconnected; call connect() first")
        if self._status == RobotStatus.EMERGENCY_STOP:
            raise RobotError("emergency stop engaged; release it before recovering")
        self._status = RobotStatus.READY

    def home(self) -> None:
        self._check_ready()
        self._sync_tool()
        run = _Run()
        self._retreat(run, force_home=True)
        self._cell.advance(run.duration)

    def execute(self, action: Action) -> Outcome:
        """Run one primitive physically; raises ProtectiveStop when a stop is injected mid-motion."""
        self._check_ready()
        if not action.is_finite():
            return Outcome(executed=False, error=f"action has non-finite values: {action}")
        self._sync_tool()
        run = _Run()
        if self._cell.faults.protective_stop_next_action:
            self._cell.faults.protective_stop_next_action = False
            run.stop_fraction = 0.5
        self._status = RobotStatus.MOVING
        try:
            grasp = action.kind == ActionKind.GRASP
            outcome = self._grasp(action, run) if grasp else self._push(action, run)
        except ProtectiveStop:
            self._status = RobotStatus.PROTECTIVE_STOP
            self._cell.advance(run.duration)
            raise
        self._status = RobotStatus.READY
        self._cell.advance(run.duration)
        return outcome

    def _sync_tool(self) -> None:
        """The arm starts where the physical gripper is (home after a new scene, wherever it stopped)."""
        pose = self._rig.pose
        self._tool, self._yaw = pose[:3].copy(), float(pose[3])

    def _check_ready(self) -> None:
        if self._status == RobotStatus.DISCONNECTED:
            raise RobotDisconnected("the simulated robot is disconnected; call connect() first")
        if self._status == RobotStatus.PROTECTIVE_STOP:
            raise ProtectiveStop("the robot is in protective stop; acknowledge it and call recover()")
        if self._status == RobotStatus.EMERGENCY_STOP:
            raise RobotError("emergency stop engaged; release it and call recover()")

    @property
    def _rig(self) -> GripperRig:
        return self._cell.rig

    def _travel_z(self) -> float:
        return self._cell.recipe.workspace.table_z + self._cell.recipe.robot.travel_height

    def _tip_z(self, z: float) -> float:
        return max(z, self._cell.recipe.workspace.table_z + TIP_CLEARANCE)

    def _grasp(self, action: Action, run: _Run) -> Outcome:
        rig, gr = self._rig, self._cell.recipe.gripper
        self._approach(action, run, jaw_open=True)
        self._descend(action, run)
        rig.jaws(closing=True)
        run.duration += self._motion.jaw(gr.max_opening - rig.width)
        closed_width = rig.width
        self._lift(run)
        rig.settle_jaws()
        lifted_width = rig.width
        held = closed_width > HELD_MIN_WIDTH and lifted_width > HELD_MIN_WIDTH
        self.last_held = rig.held_objects() if held else set()
        delivered = False
        if held:
            delivered = self._deliver(run)
        else:
            self._release(run)
        self._retreat(run)
        return Outcome(executed=True, grasp_held=held, finger_width=closed_width, duration=run.duration,
                       delivered=delivered)

    def _push(self, action: Action, run: _Run) -> Outcome:
        self._approach(action, run, jaw_open=False)
        self._descend(action, run)
        direction = np.array([math.cos(action.angle), math.sin(action.angle), 0.0])
        end = self._rig.pose[:3] + direction * PUSH_LENGTH
        self._rig.move(end, speed=self._cell.recipe.robot.contact_speed)
        run.duration += self._motion.contact_move(PUSH_LENGTH)
        self._tool = self._rig.pose[:3].copy()
        self._lift(run)
        self._retreat(run)
        return Outcome(executed=True, finger_width=self._rig.width, duration=run.duration)

    def _approach(self, action: Action, run: _Run, jaw_open: bool) -> None:
        """Lift clear, travel above the target turning the wrist and setting the jaws on the way."""
        self._lift(run)
        yaw = _nearest_symmetric(action.angle, self._yaw)
        above = np.array([action.x, action.y, self._travel_z()])
        gr = self._cell.recipe.gripper
        target_width = gr.max_opening if jaw_open else 0.0
        travel = max(self._motion.free_move(self._tool, above, wrap_angle(yaw - self._yaw)),
                     self._motion.jaw(target_width - self._rig.width))
        run.duration += travel
        self._world_runs_on(travel)
        hover = max(self._cell.highest_point_near(action.x, action.y, gr.max_opening) + APPROACH_CLEARANCE,
                    self._tip_z(action.z))
        hover = min(hover, self._travel_z())
        self._rig.teleport(np.array([action.x, action.y, hover]), yaw, target_width / 2)
        self._tool, self._yaw = above, yaw

    def _descend(self, action: Action, run: _Run) -> None:
        """Guarded descent to the goal; the real arm moves fast to APPROACH_OFFSET above it, then slowly."""
        rig = self._rig
        goal = np.array([action.x, action.y, self._tip_z(action.z)])
        rig.move(goal, speed=DESCENT_SPEED, guarded=True, stop_after=run.stop_fraction)
        final = rig.pose[:3].copy()
        slow_from = min(self._tool[2], max(goal[2] + APPROACH_OFFSET, final[2]))
        run.duration += self._motion.free_move(self._tool, np.array([*final[:2], slow_from]))
        run.duration += self._motion.contact_move(slow_from - final[2])
        self._tool = final
        self._guarded_stop(run, "descending")

    def _guarded_stop(self, run: _Run, what: str) -> None:
        if run.stop_fraction is not None:
            raise ProtectiveStop(f"protective stop while {what} (simulated fault); "
                                 "acknowledge it and call recover()")

    def _lift(self, run: _Run) -> None:
        """Rise straight up to travel height, physically when the tool is down among the objects."""
        rig = self._rig
        top = self._travel_z()
        pose = rig.pose
        if pose[2] < top - 1e-4:
            rig.move(np.array([pose[0], pose[1], top]), **self._arm_limits())
            run.duration += self._motion.free_move(pose[:3], np.array([pose[0], pose[1], top]))
        self._tool = rig.pose[:3].copy()

    def _deliver(self, run: _Run) -> bool:
        """Carry the held item over the reject bin and drop it; True when it lands inside."""
        rig, cell = self._rig, self._cell
        held = set(self.last_held)
        bin_spec = cell.recipe.reject_bin
        over_bin = np.array([bin_spec.position[0], bin_spec.position[1],
                             bin_spec.position[2] + bin_spec.release_height])
        if cell.faults.slip_next_grasp:
            cell.faults.slip_next_grasp = False
            start = rig.pose[:3]
            rig.move(start + SLIP_AT * (over_bin - start), **self._arm_limits())
            rig.loosen(SLIP_OPENING)
        rig.move(over_bin, **self._arm_limits())
        run.duration += self._motion.free_move(self._tool, over_bin)
        self._tool = rig.pose[:3].copy()
        self._release(run)
        return bool(held) and all(cell.in_bin(oid) for oid in held)

    def _arm_limits(self) -> dict[str, float]:
        """The real arm's speed and acceleration: what a held item feels on lifts and carries."""
        robot = self._cell.recipe.robot
        return {"speed": robot.speed, "acceleration": robot.acceleration}

    def _release(self, run: _Run) -> None:
        """Open the jaws and let whatever falls come to rest."""
        rig = self._rig
        before = rig.width
        rig.jaws(closing=False)
        run.duration += self._motion.jaw(rig.width - before)
        rig.step(int(RELEASE_WAIT / self._cell.scene.model.opt.timestep))

    def _retreat(self, run: _Run, force_home: bool = False) -> None:
        """Leave the camera's view (to home) when the tool is inside it, as the real cell must."""
        self._lift(run)
        if not force_home and not self._cell.gripper_in_view():
            return
        home = np.asarray(self._cell.recipe.robot.home, float)
        travel = self._motion.free_move(self._tool, home, wrap_angle(0.0 - self._yaw))
        run.duration += travel
        self._rig.teleport(home, 0.0)
        self._tool, self._yaw = home, 0.0
        self._world_runs_on(travel)

    def _world_runs_on(self, seconds: float) -> None:
        """Physics for ``seconds`` while the arm travels in free space, clear of the objects (its path
        is not simulated, only its time). The world does not wait for the arm: what a push set rolling
        rolls on and comes to rest before the camera's next image, as on the real cell; settled objects
        sleep, so this costs little."""
        steps = int(round(seconds / self._cell.scene.model.opt.timestep))
        if steps > 0:
            self._rig.step(steps)


def _nearest_symmetric(angle: float, current: float) -> float:
    """The jaws are symmetric: of ``angle`` and ``angle + pi`` take the one nearer the current yaw."""
    a = wrap_angle(angle)
    b = wrap_angle(angle + math.pi)
    return a if abs(wrap_angle(a - current)) <= abs(wrap_angle(b - current)) else b
