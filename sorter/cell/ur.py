"""Universal Robots arm through ur_rtde: push and grasp primitives with a Robotiq or OnRobot gripper.

The tool centre point (TCP) is the centre between the fingertips, set on the controller from
``robot.tool_offset``; its x axis must lie along the jaws' closing direction. Every move is an asynchronous
``moveL`` that is watched until it arrives: safety status bits (protective and emergency stop), the link to
the controller and operator stop requests are checked on every poll. Descents are guarded by the
controller's tool-contact detection and stop on whatever they touch first, like the simulated cell's.
Every primitive ends at the home pose, out of the camera's view. A protective stop is only cleared by
``recover()``, which the pick loop calls after the operator acknowledged it.

ur_rtde is imported when the robot connects. ``URRobot(recipe, motion_enabled=False)`` connects read-only
(receive and dashboard interfaces, gripper status): it reports status and never moves, for dry runs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from sorter.cell.base import (
    Action,
    ActionKind,
    EmergencyStop,
    Outcome,
    ProtectiveStop,
    Robot,
    RobotDisconnected,
    RobotError,
    RobotStatus,
)
from sorter.cell.grippers import HELD_MIN_WIDTH, Gripper, make_gripper
from sorter.geometry import PUSH_LENGTH

log = logging.getLogger(__name__)

# getSafetyStatusBits (UR RTDE guide, safety_status_bits; ur_client_library UrRtdeSafetyStatusBits)
SAFETY_PROTECTIVE_STOPPED = 1 << 2
SAFETY_SAFEGUARD_STOPPED = 1 << 4
SAFETY_SYSTEM_EMERGENCY_STOPPED = 1 << 5
SAFETY_ROBOT_EMERGENCY_STOPPED = 1 << 6
SAFETY_EMERGENCY_STOPPED = 1 << 7
SAFETY_VIOLATION = 1 << 8
SAFETY_FAULT = 1 << 9
EMERGENCY_MASK = SAFETY_SYSTEM_EMERGENCY_STOPPED | SAFETY_ROBOT_EMERGENCY_STOPPED | SAFETY_EMERGENCY_STOPPED
# getRobotMode (UR RTDE guide, robot_mode)
ROBOT_MODES = {-1: "no controller", 0: "disconnected", 1: "confirm safety", 2: "booting", 3: "power off",
               4: "power on", 5: "idle", 6: "backdrive", 7: "running", 8: "updating firmware"}
ROBOT_MODE_RUNNING = 7
UNLOCK_DELAY = 5.0  # s a protective stop must last before the dashboard may unlock it (UR dashboard server)

POLL_PERIOD = 0.008  # s between status polls while moving (the RTDE rate of a CB3 is 125 Hz)
ARRIVAL_TOLERANCE = 0.002  # m from the target at which a move counts as arrived
STILL_SPEED = 0.002  # m/s below which the tool counts as at rest
SETTLE_TIME = 0.5  # s at rest short of the target before a move counts as ended early
TIP_CLEARANCE = 0.002  # m, lowest fingertip height above the table (as the simulated cell)
DOWN = (0.0, 0.0, -1.0, 0.0, 0.0, 0.0)  # contact detection direction for descents (robot base frame)


MAX_DIGITAL_INPUT = 17  # RTDE input bits: 0-7 standard, 8-15 configurable, 16-17 tool


def import_ur_rtde() -> SimpleNamespace:
    """The three ur_rtde modules, or a RobotError that says what to install."""
    try:
        import dashboard_client
        import rtde_control
        import rtde_receive
    except ImportError as exc:
        raise RobotError(f"the UR RTDE library is not installed ({exc}); install it with 'pip install "
                         "ur_rtde' in the sorter environment (installer/install.sh does this)") from None
    return SimpleNamespace(control=rtde_control, receive=rtde_receive, dashboard=dashboard_client)


def jaw_yaw(angle: float) -> float:
    """The tool yaw for an action angle, folded into [-pi/2, pi/2): the jaws are symmetric, so the wrist
    never turns more than a quarter turn either way from its home orientation."""
    return (angle + math.pi / 2) % math.pi - math.pi / 2


def tool_pose(x: float, y: float, z: float, yaw: float) -> list[float]:
    """UR pose [x, y, z, rx, ry, rz] of a TCP pointing straight down with its x axis at ``yaw``.

    The orientation Rz(yaw) * Rx(pi) is a half turn about the horizontal axis at yaw/2, so its rotation
    vector is pi * (cos(yaw/2), sin(yaw/2), 0)."""
    return [x, y, z, math.pi * math.cos(yaw / 2), math.pi * math.sin(yaw / 2), 0.0]


def move_time(distance: float, speed: float, acceleration: float) -> float:
    """Seconds for a rest-to-rest straight move with trapezoidal (or triangular) velocity."""
    if distance < speed * speed / acceleration:
        return 2.0 * math.sqrt(max(distance, 0.0) / acceleration)
    return distance / speed + speed / acceleration


class _Stopped(Exception):
    """An operator stop request ended the motion."""


@dataclass(frozen=True)
class _Move:
    pose: list[float]
    speed: float
    guarded: bool = False


class URRobot(Robot):
    """A UR arm driven through RTDE, with the recipe's gripper, speeds, tool offset and payload."""

    def __init__(self, recipe, *, gripper: Gripper | None = None, motion_enabled: bool = True,
                 connect_attempts: int = 3, retry_delay: float = 2.0):
        if recipe.robot.kind != "ur":
            raise RobotError(f"robot.kind is '{recipe.robot.kind}'; the UR adapter needs 'ur'")
        self.recipe = recipe
        self.host = recipe.robot.host
        self.gripper = gripper if gripper is not None else make_gripper(recipe.gripper, self.host)
        self.motion_enabled = motion_enabled
        self._attempts, self._retry_delay = max(1, connect_attempts), retry_delay
        self._control = self._receive = self._dashboard = None
        self._moving = False
        self._stop_requested = threading.Event()
        self._stopped_at: float | None = None

    # --- connection ---------------------------------------------------------------------------------

    def connect(self) -> None:
        if self._receive is not None:
            return
        sdk = import_ur_rtde()
        last = None
        for attempt in range(1, self._attempts + 1):
            try:
                self._open(sdk)
                break
            except RobotDisconnected as exc:
                last = exc
                log.warning("UR %s: connection attempt %d/%d failed: %s", self.host, attempt,
                            self._attempts, exc)
                self._close_interfaces()
                time.sleep(self._retry_delay if attempt < self._attempts else 0.0)
            except RobotError:
                self._close_interfaces()
                raise
        else:
            raise RobotDisconnected(f"cannot connect to the UR controller at {self.host} after "
                                    f"{self._attempts} attempts ({last}); check the robot is on, the network "
                                    "cable, and robot.host in the recipe")
        try:
            self._configure_tool()
            self.gripper.connect()
            if self.motion_enabled:
                self.gripper.activate()
        except BaseException:
            self.disconnect()
            raise

    def _open(self, sdk: SimpleNamespace) -> None:
        try:
            dashboard = sdk.dashboard.DashboardClient(self.host)
            dashboard.connect()
            self._dashboard = dashboard
            if self.motion_enabled:
                self._require_remote_control()
            self._receive = sdk.receive.RTDEReceiveInterface(self.host)
            if self.motion_enabled:
                self._control = sdk.control.RTDEControlInterface(self.host)
        except RuntimeError as exc:
            raise _connection_error(self.host, exc) from None

    def _require_remote_control(self) -> None:
        version = self._dashboard.polyscopeVersion()
        match = re.search(r"(\d+)\.(\d+)", version)
        if match and (int(match[1]), int(match[2])) >= (5, 6) and not self._dashboard.isInRemoteControl():
            raise RobotError("the robot is in local control; switch the teach pendant to Remote Control "
                             "(the icon at its top right) and connect again")

    def _configure_tool(self) -> None:
        if self._control is None:
            return
        offset = list(self.recipe.robot.tool_offset)
        cog = [0.0, 0.0, offset[2] / 2]  # gripper mass taken as centred halfway between flange and TCP
        if not self._control.setTcp(offset) or not self._control.setPayload(self.recipe.robot.payload, cog):
            raise RobotError("the controller refused the tool offset or payload; check robot.tool_offset and "
                             "robot.payload in the recipe")

    def disconnect(self) -> None:
        if self._control is not None:
            try:
                self._control.stopScript()
            except RuntimeError as exc:
                log.debug("stopping the RTDE control script: %s", exc)
        self._close_interfaces()
        self.gripper.disconnect()

    def _close_interfaces(self) -> None:
        for name in ("_control", "_receive", "_dashboard"):
            interface = getattr(self, name)
            if interface is not None:
                try:
                    interface.disconnect()
                except RuntimeError as exc:
                    log.debug("UR %s: disconnecting %s: %s", self.host, name, exc)
            setattr(self, name, None)

    def _linked(self) -> bool:
        return (self._receive is not None and self._receive.isConnected()
                and (self._control is None or self._control.isConnected()))

    def _reconnect(self) -> None:
        """Re-open dropped RTDE links (the control interface re-uploads its script), then the tool setup."""
        for attempt in range(1, self._attempts + 1):
            try:
                for interface in (self._receive, self._control):
                    if interface is not None and not interface.isConnected():
                        interface.reconnect()
                if self._linked():
                    self._configure_tool()
                    return
            except RuntimeError as exc:
                log.warning("UR %s: reconnect attempt %d failed: %s", self.host, attempt, exc)
            time.sleep(self._retry_delay if attempt < self._attempts else 0.0)
        raise RobotDisconnected(f"lost the connection to the UR controller at {self.host} and could not "
                                f"reconnect after {self._attempts} attempts; check the network cable and "
                                "that the controller is on")

    # --- state --------------------------------------------------------------------------------------

    def status(self) -> RobotStatus:
        """From the safety status bits and robot mode; not running (powered off, booting) reads as
        disconnected, since no motion is possible. ``describe()`` says which."""
        if self._receive is None or not self._linked():
            return RobotStatus.DISCONNECTED
        bits = self._receive.getSafetyStatusBits()
        if bits & EMERGENCY_MASK:
            return RobotStatus.EMERGENCY_STOP
        if bits & (SAFETY_PROTECTIVE_STOPPED | SAFETY_SAFEGUARD_STOPPED):
            return RobotStatus.PROTECTIVE_STOP
        if self._receive.getRobotMode() != ROBOT_MODE_RUNNING:
            return RobotStatus.DISCONNECTED
        return RobotStatus.MOVING if self._moving else RobotStatus.READY

    def describe(self) -> str:
        """One line for the operator: link, robot mode, safety state, control mode and gripper."""
        if self._receive is None:
            return f"UR {self.host}: not connected"
        if not self._linked():
            return f"UR {self.host}: connection lost"
        mode = self._receive.getRobotMode()
        bits = self._receive.getSafetyStatusBits()
        parts = [f"UR {self.host}: robot {ROBOT_MODES.get(mode, f'mode {mode}')}", _safety_text(bits),
                 "motion enabled" if self.motion_enabled else "read-only (motion disabled)"]
        try:
            g = self.gripper.state()
            parts.append(f"gripper {g.width * 1000:.1f} mm" + (f", fault: {g.fault}" if g.fault else ""))
        except RobotError as exc:
            parts.append(f"gripper: {exc}")
        return "; ".join(parts)

    def digital_input(self, index: int) -> bool:
        """State of controller digital input ``index``: 0-7 standard, 8-15 configurable, 16-17 tool.

        The loop polls it between batches when the recipe waits for a line signal
        (``loop.next_batch.signal: digital-input``). A lost link is retried like every other call.
        """
        if not 0 <= index <= MAX_DIGITAL_INPUT:
            raise ValueError(f"digital input {index} does not exist; the UR has inputs 0 to "
                             f"{MAX_DIGITAL_INPUT} (0-7 standard, 8-15 configurable, 16-17 tool)")
        if self._receive is None:
            raise RobotDisconnected(f"the UR at {self.host} is not connected; cannot read digital input "
                                    f"{index}")
        if not self._linked():
            self._reconnect()
        return bool(self._receive.getActualDigitalInputBits() >> index & 1)

    # --- operator actions ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop_requested.set()
        if self._control is not None:
            try:
                self._control.stopL(self.recipe.robot.acceleration)
            except RuntimeError as exc:
                log.warning("UR %s: stop request failed: %s", self.host, exc)

    def recover(self) -> None:
        """Unlock a protective stop (at least UNLOCK_DELAY after it began) and restart the control script."""
        self._require_motion("recover")
        if not self._linked():
            self._reconnect()
        bits = self._receive.getSafetyStatusBits()
        if bits & EMERGENCY_MASK:
            raise EmergencyStop("the emergency stop is engaged; release the button and reset it on the teach "
                                "pendant, then acknowledge again (it cannot be cleared remotely)")
        if bits & SAFETY_PROTECTIVE_STOPPED:
            self._unlock_protective_stop()
        elif bits & SAFETY_SAFEGUARD_STOPPED:
            raise ProtectiveStop("safeguard stop: close the guard or reset the safety input, then "
                                 "acknowledge")
        if not self._control.isProgramRunning() and not self._control.reuploadScript():
            raise RobotError("the RTDE control script could not be restarted on the controller; check the "
                             "pendant for a popup or a running program")
        if self.gripper.fault():
            self.gripper.activate()
        self._stopped_at = None

    def _unlock_protective_stop(self) -> None:
        """Unlock once UNLOCK_DELAY has passed; with the stop's start unknown, try now and once more later."""
        if self._stopped_at is None:
            waits = (0.0, UNLOCK_DELAY)
        else:
            waits = (max(0.0, UNLOCK_DELAY - (time.monotonic() - self._stopped_at)),)
        for wait in waits:
            time.sleep(wait)
            self._dashboard.closeSafetyPopup()
            self._dashboard.unlockProtectiveStop()
            if self._wait_until(self._protective_stop_cleared, 2.0):
                return
        raise ProtectiveStop("the protective stop could not be unlocked; check the cause at the pendant and "
                             "unlock it there")

    def _protective_stop_cleared(self) -> bool:
        return not self._receive.getSafetyStatusBits() & SAFETY_PROTECTIVE_STOPPED

    @staticmethod
    def _wait_until(condition, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_PERIOD)
        return True

    # --- primitives ---------------------------------------------------------------------------------

    def home(self) -> None:
        self._prepare("moving home")
        self._moving = True
        try:
            self._run(self._lift_moves() + [self._home_move()], "moving home")
        except _Stopped:
            return
        finally:
            self._moving = False

    def execute(self, action: Action) -> Outcome:
        if not action.is_finite():
            return Outcome(executed=False, error=f"action has non-finite values: {action}")
        what = f"during the {action.kind} at ({action.x:.3f}, {action.y:.3f})"
        self._prepare(what)
        started = time.monotonic()
        self._moving = True
        try:
            if action.kind == ActionKind.GRASP:
                outcome = self._grasp(action, what)
            else:
                outcome = self._push(action, what)
        except _Stopped:
            outcome = Outcome(executed=False, error=f"stopped on request {what}")
        finally:
            self._moving = False
        return dataclasses.replace(outcome, duration=time.monotonic() - started)

    def _prepare(self, what: str) -> None:
        self._require_motion(what)
        if not self._linked():
            self._reconnect()
        self._check_safety(what)
        mode = self._receive.getRobotMode()
        if mode != ROBOT_MODE_RUNNING:
            name = ROBOT_MODES.get(mode, mode)
            raise RobotError(f"the robot is not running (robot mode: {name}); power it on and release the "
                             "brakes on the teach pendant")
        self._stop_requested.clear()

    def _require_motion(self, what: str) -> None:
        if self._receive is None:
            raise RobotDisconnected("the robot is not connected; call connect() first")
        if not self.motion_enabled:
            raise RobotError(f"motion is disabled on this connection (dry run); refused {what}")

    def _push(self, action: Action, what: str) -> Outcome:
        yaw = jaw_yaw(action.angle)
        self.gripper.close()
        self._run(self._lift_moves() + [self._above(action, yaw)], what)
        reached = self._run([self._descent(action, yaw)], what)
        dx, dy = PUSH_LENGTH * math.cos(action.angle), PUSH_LENGTH * math.sin(action.angle)
        x, y, z = reached[0] + dx, reached[1] + dy, reached[2]
        self._run([_Move(tool_pose(x, y, z, yaw), self.recipe.robot.contact_speed)], what)
        self._run(self._lift_moves() + [self._home_move()], what)
        return Outcome(executed=True, finger_width=self.gripper.width())

    def _grasp(self, action: Action, what: str) -> Outcome:
        yaw = jaw_yaw(action.angle)
        self.gripper.open()
        self._run(self._lift_moves() + [self._above(action, yaw)], what)
        self._run([self._descent(action, yaw)], what)
        closed = self.gripper.close()
        gripped = self.gripper.state().object_detected and closed > HELD_MIN_WIDTH
        self._run(self._lift_moves(), what)
        held = gripped and self.gripper.held()
        delivered = False
        if held:
            self._run(self._bin_moves(yaw), what)
            delivered = True
        self.gripper.open()
        self._run(self._lift_moves() + [self._home_move()], what)
        return Outcome(executed=True, grasp_held=held, finger_width=closed, delivered=delivered)

    def _travel_z(self) -> float:
        return self.recipe.workspace.table_z + self.recipe.robot.travel_height

    def _above(self, action: Action, yaw: float) -> _Move:
        return _Move(tool_pose(action.x, action.y, self._travel_z(), yaw), self.recipe.robot.speed)

    def _descent(self, action: Action, yaw: float) -> _Move:
        z = max(action.z, self.recipe.workspace.table_z + TIP_CLEARANCE)
        return _Move(tool_pose(action.x, action.y, z, yaw), self.recipe.robot.contact_speed, guarded=True)

    def _lift_moves(self) -> list[_Move]:
        """Straight up to travel height when the tool is below it, keeping its orientation."""
        pose = list(self._receive.getActualTCPPose())
        if pose[2] >= self._travel_z() - ARRIVAL_TOLERANCE:
            return []
        return [_Move(pose[:2] + [self._travel_z()] + pose[3:], self.recipe.robot.contact_speed)]

    def _home_move(self) -> _Move:
        x, y, z = self.recipe.robot.home
        return _Move(tool_pose(x, y, z, 0.0), self.recipe.robot.speed)

    def _bin_moves(self, yaw: float) -> list[_Move]:
        """Carry at travel height to above the bin, then down to the release height."""
        bx, by, bz = self.recipe.reject_bin.position
        release = bz + self.recipe.reject_bin.release_height
        carry = max(self._travel_z(), release)
        speed = self.recipe.robot.speed
        return [_Move(tool_pose(bx, by, carry, yaw), speed), _Move(tool_pose(bx, by, release, yaw), speed)]

    # --- motion -------------------------------------------------------------------------------------

    def _run(self, moves: list[_Move], what: str) -> list[float]:
        """Execute moves one after another; returns the TCP pose where the last one ended."""
        for move in moves:
            self._move(move, what)
        return list(self._receive.getActualTCPPose())

    def _move(self, move: _Move, what: str) -> None:
        acceleration = self.recipe.robot.acceleration
        if move.guarded:
            self._control.startContactDetection(list(DOWN))
        try:
            if not self._control.moveL(move.pose, move.speed, acceleration, True):
                self._check_safety(what)
                raise RobotError(f"the controller refused a move {what}; check the pendant for a popup")
            self._follow(move, what)
        finally:
            if move.guarded and self._linked():
                self._end_contact_detection()

    def _end_contact_detection(self) -> None:
        try:
            self._control.stopContactDetection()
        except RuntimeError as exc:
            log.warning("UR %s: ending contact detection failed: %s", self.host, exc)

    def _follow(self, move: _Move, what: str) -> None:
        """Poll until the move arrives (or stops on contact when guarded); raise on any fault."""
        start = np.asarray(self._receive.getActualTCPPose()[:3])
        target = np.asarray(move.pose[:3])
        budget = 3.0 * move_time(float(np.linalg.norm(target - start)), move.speed,
                                 self.recipe.robot.acceleration) + 2.0
        deadline = time.monotonic() + budget
        still_since = None
        while True:
            self._check_link(what)
            self._check_safety(what)
            if self._stop_requested.is_set():
                raise _Stopped()
            running = self._control.getAsyncOperationProgress() >= 0
            at = np.asarray(self._receive.getActualTCPPose()[:3])
            off = float(np.linalg.norm(at - target))
            if not running and off <= ARRIVAL_TOLERANCE:
                return
            if not running and np.linalg.norm(self._receive.getActualTCPSpeed()[:3]) < STILL_SPEED:
                if move.guarded and self._control.readContactDetection():
                    return
                still_since = still_since or time.monotonic()
                if time.monotonic() - still_since > SETTLE_TIME:
                    raise RobotError(f"a move ended {off * 1000:.0f} mm short of its target {what}")
            if time.monotonic() > deadline:
                self._control.stopL(self.recipe.robot.acceleration)
                raise RobotError(f"a move did not finish within {budget:.1f} s {what}")
            time.sleep(POLL_PERIOD)

    def _check_link(self, what: str) -> None:
        if self._linked():
            return
        self._reconnect()
        try:
            self._control.stopL(self.recipe.robot.acceleration)
        except RuntimeError as exc:
            log.warning("UR %s: stop after reconnecting failed: %s", self.host, exc)
        raise RobotDisconnected(f"the connection to the controller dropped {what}; it was re-established and "
                                "the arm stopped; the action was aborted")

    def _check_safety(self, what: str) -> None:
        bits = self._receive.getSafetyStatusBits()
        if bits & EMERGENCY_MASK:
            raise EmergencyStop(f"emergency stop {what}; release the button and reset it on the teach "
                                "pendant")
        if bits & SAFETY_PROTECTIVE_STOPPED:
            self._stopped_at = self._stopped_at or time.monotonic()
            raise ProtectiveStop(f"protective stop {what}; check for a collision or an overload, then "
                                 "acknowledge to unlock it")
        if bits & SAFETY_SAFEGUARD_STOPPED:
            raise ProtectiveStop(f"safeguard stop {what}; close the guard or reset the safety input")
        if bits & (SAFETY_VIOLATION | SAFETY_FAULT):
            raise RobotError(f"safety system {_safety_text(bits)} {what}; restart safety on the teach "
                             "pendant")


def _safety_text(bits: int) -> str:
    names = [(EMERGENCY_MASK, "emergency stop"), (SAFETY_PROTECTIVE_STOPPED, "protective stop"),
             (SAFETY_SAFEGUARD_STOPPED, "safeguard stop"), (SAFETY_VIOLATION, "violation"),
             (SAFETY_FAULT, "fault")]
    active = [name for mask, name in names if bits & mask]
    return ", ".join(active) if active else "safety normal"


def _connection_error(host: str, exc: RuntimeError) -> RobotError:
    """Map ur_rtde's connection errors to what the technician should do; transient ones are retried."""
    text = str(exc)
    if "remote control" in text:
        return RobotError("the robot is in local control; switch the teach pendant to Remote Control (the "
                          "icon at its top right) and connect again")
    if "registers are already in use" in text:
        return RobotError("the controller's RTDE input registers are taken by another interface; disable "
                          "EtherNet/IP, PROFINET or MODBUS units in the robot's Installation and connect "
                          "again")
    return RobotDisconnected(f"cannot reach the UR controller at {host} ({text})")
