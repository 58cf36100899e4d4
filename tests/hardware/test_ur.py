"""The UR adapter on stand-ins for ur_rtde (the SDK boundary only) and a loopback Robotiq URCap."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sorter.cell import ur
from sorter.cell.base import (
    Action,
    ActionKind,
    EmergencyStop,
    ProtectiveStop,
    RobotDisconnected,
    RobotError,
    RobotStatus,
)
from sorter.cell.ur import URRobot, jaw_yaw, tool_pose
from sorter.geometry import PUSH_LENGTH
from sorter.recipe import parse_recipe
from tests.hardware.fake_grippers import RobotiqURCapServer
from tests.hardware.fake_ur_rtde import PS_BIT, Controller, install

RECIPE = Path(__file__).parents[2] / "recipes" / "toy-blocks.yaml"
TOOL_OFFSET = [0.0, 0.0, 0.16, 0.0, 0.0, 0.0]


def hardware_recipe(gripper_port: int):
    data = yaml.safe_load(RECIPE.read_text())
    data["camera"] = {"kind": "realsense"}
    data["robot"].update(kind="ur", host="192.168.1.10", tool_offset=TOOL_OFFSET, payload=1.2)
    data["gripper"].update(kind="robotiq-2f85", host="127.0.0.1", port=gripper_port)
    return parse_recipe(yaml.safe_dump(data), "hardware.yaml")


@pytest.fixture
def urcap():
    with RobotiqURCapServer() as server:
        yield server


@pytest.fixture
def controller(monkeypatch):
    c = Controller()
    install(monkeypatch, c)
    monkeypatch.setattr(ur, "UNLOCK_DELAY", 0.0)
    return c


@pytest.fixture
def robot(controller, urcap):
    r = URRobot(hardware_recipe(urcap.port), retry_delay=0.0)
    r.connect()
    yield r
    r.disconnect()


def _rotation(rv) -> np.ndarray:
    """Rotation matrix of a UR rotation vector (Rodrigues)."""
    v = np.asarray(rv, float)
    angle = float(np.linalg.norm(v))
    k = v / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


@pytest.mark.parametrize("yaw", [0.0, 0.4, -1.2, math.pi / 2 - 1e-3])
def test_tool_points_down_with_its_x_axis_at_the_yaw(yaw) -> None:
    r = _rotation(tool_pose(0.5, 0.0, 0.1, yaw)[3:])
    assert np.allclose(r[:, 2], [0, 0, -1], atol=1e-9)
    assert np.allclose(r[:, 0], [math.cos(yaw), math.sin(yaw), 0], atol=1e-9)


def test_jaw_yaw_folds_to_a_quarter_turn() -> None:
    for angle in np.linspace(-2 * math.pi, 2 * math.pi, 33):
        folded = jaw_yaw(angle)
        assert -math.pi / 2 <= folded < math.pi / 2
        assert math.isclose(math.sin(2 * folded), math.sin(2 * angle), abs_tol=1e-9)


def test_connect_sets_tool_offset_and_payload(controller, robot) -> None:
    assert controller.tcp == TOOL_OFFSET
    assert controller.payload == (1.2, [0.0, 0.0, 0.08])
    assert robot.status() == RobotStatus.READY


def test_grasp_holds_carries_to_the_bin_and_ends_home(controller, urcap, robot) -> None:
    urcap.place_object(0.030)
    outcome = robot.execute(Action(ActionKind.GRASP, 0.50, 0.05, 0.02, 0.3))
    assert outcome.executed and outcome.grasp_held and outcome.delivered
    assert outcome.finger_width == pytest.approx(0.030, abs=0.001)
    poses = [np.asarray(p) for p, _, _ in controller.moves]
    speeds = [s for _, s, _ in controller.moves]
    descent = next(i for i, p in enumerate(poses) if p[2] < 0.1)
    assert np.allclose(poses[descent][:3], [0.50, 0.05, 0.02])
    assert speeds[descent] == 0.1  # recipe contact speed
    assert np.allclose(poses[descent][3:], tool_pose(0, 0, 0, 0.3)[3:])
    bx, by, _ = (0.524, 0.42, 0.0)
    release = [p for p in poses if np.allclose(p[:2], [bx, by])]
    assert release and min(p[2] for p in release) == pytest.approx(0.10)  # bin release height
    assert np.allclose(poses[-1][:3], [0.35, -0.40, 0.40])  # home, out of the camera's view
    assert all(acc == 1.5 for _, _, acc in controller.moves)


def test_grasp_on_nothing_is_not_held_and_not_carried(controller, urcap, robot) -> None:
    outcome = robot.execute(Action(ActionKind.GRASP, 0.50, 0.05, 0.02, 0.0))
    assert outcome.executed and not outcome.grasp_held and not outcome.delivered
    assert outcome.finger_width < 0.003
    assert not any(np.allclose(p[:2], [0.524, 0.42]) for p, _, _ in controller.moves)


def test_push_goes_its_length_along_the_angle(controller, urcap, robot) -> None:
    angle = 2.5
    outcome = robot.execute(Action(ActionKind.PUSH, 0.45, 0.0, 0.015, angle))
    assert outcome.executed and not outcome.grasp_held
    poses = [np.asarray(p) for p, _, _ in controller.moves]
    low = [i for i, p in enumerate(poses) if p[2] < 0.1]
    start, end = poses[low[0]], poses[low[1]]
    assert np.allclose(end[:2] - start[:2], [PUSH_LENGTH * math.cos(angle), PUSH_LENGTH * math.sin(angle)])
    assert np.allclose(start[3:], tool_pose(0, 0, 0, angle - math.pi)[3:])  # jaws turned a quarter at most
    assert urcap.vars["PRE"] == 255 and outcome.finger_width < 0.003  # fingers were closed to push


def test_guarded_descent_stops_on_contact_and_grasps_there(controller, urcap, robot) -> None:
    controller.contact_top = 0.05
    urcap.place_object(0.040)
    outcome = robot.execute(Action(ActionKind.GRASP, 0.50, 0.05, 0.02, 0.0))
    assert outcome.executed and outcome.grasp_held
    assert len(controller.contacts) == 1 and controller.contacts[0][2] == pytest.approx(0.05)


def test_protective_stop_mid_move_needs_recovery(controller, urcap, robot) -> None:
    controller.protective_stop_in_move = 2  # the descent
    with pytest.raises(ProtectiveStop, match="acknowledge"):
        robot.execute(Action(ActionKind.GRASP, 0.50, 0.05, 0.02, 0.0))
    assert robot.status() == RobotStatus.PROTECTIVE_STOP
    moves = len(controller.moves)
    with pytest.raises(ProtectiveStop):
        robot.execute(Action(ActionKind.GRASP, 0.50, 0.05, 0.02, 0.0))
    assert len(controller.moves) == moves and controller.dashboard_log == []  # no motion, no auto-unlock
    robot.recover()
    assert controller.dashboard_log == ["closeSafetyPopup", "unlockProtectiveStop"]
    assert controller.reuploads == 1 and robot.status() == RobotStatus.READY
    assert robot.execute(Action(ActionKind.PUSH, 0.45, 0.0, 0.015, 0.0)).executed


def test_link_lost_mid_move_reconnects_and_aborts(controller, urcap, robot) -> None:
    controller.drop_link_in_move = 3
    controller.link_down_attempts = 2
    with pytest.raises(RobotDisconnected, match="re-established"):
        robot.execute(Action(ActionKind.GRASP, 0.50, 0.05, 0.02, 0.0))
    assert controller.stops >= 1 and controller.link
    assert robot.status() == RobotStatus.READY
    assert robot.execute(Action(ActionKind.PUSH, 0.45, 0.0, 0.015, 0.0)).executed


def test_link_that_stays_down_is_reported(controller, urcap, robot) -> None:
    controller.drop_link_in_move = 1
    controller.link_down_attempts = 100
    with pytest.raises(RobotDisconnected, match="could not reconnect"):
        robot.execute(Action(ActionKind.PUSH, 0.45, 0.0, 0.015, 0.0))
    assert robot.status() == RobotStatus.DISCONNECTED


def test_stop_request_interrupts_the_primitive(controller, urcap, robot) -> None:
    polls = []

    def press_stop_on_the_fifth_poll(c):
        polls.append(1)
        if len(polls) == 5:
            robot.stop()

    controller.on_poll = press_stop_on_the_fifth_poll
    outcome = robot.execute(Action(ActionKind.PUSH, 0.45, 0.0, 0.015, 0.0))
    assert not outcome.executed and "stopped on request" in outcome.error
    assert controller.stops == 1 and controller.target is None
    controller.on_poll = None
    assert robot.execute(Action(ActionKind.PUSH, 0.45, 0.0, 0.015, 0.0)).executed


def test_emergency_stop_is_reported_and_not_cleared_remotely(controller, urcap, robot) -> None:
    controller.safety_bits = 1 << 7
    assert robot.status() == RobotStatus.EMERGENCY_STOP
    with pytest.raises(EmergencyStop):
        robot.execute(Action(ActionKind.PUSH, 0.45, 0.0, 0.015, 0.0))
    with pytest.raises(EmergencyStop, match="cannot be cleared remotely"):
        robot.recover()
    assert controller.moves == []


def test_powered_off_robot_says_to_power_on(controller, urcap, robot) -> None:
    controller.robot_mode = 3
    assert robot.status() == RobotStatus.DISCONNECTED
    assert "power off" in robot.describe()
    with pytest.raises(RobotError, match="power it on"):
        robot.home()


def test_read_only_connection_reports_status_without_moving(controller, urcap) -> None:
    robot = URRobot(hardware_recipe(urcap.port), motion_enabled=False)
    robot.connect()
    assert controller.control_instances == 0  # the program running on the controller is left alone
    assert robot.status() == RobotStatus.READY
    assert "read-only" in robot.describe() and "gripper" in robot.describe()
    with pytest.raises(RobotError, match="dry run"):
        robot.execute(Action(ActionKind.GRASP, 0.50, 0.05, 0.02, 0.0))
    with pytest.raises(RobotError, match="dry run"):
        robot.home()
    robot.disconnect()
    assert controller.moves == [] and not any(c.startswith("SET") for c in urcap.commands)


def test_connect_retries_transient_failures(controller, urcap) -> None:
    controller.fail_connects = 2
    robot = URRobot(hardware_recipe(urcap.port), connect_attempts=3, retry_delay=0.0)
    robot.connect()
    assert robot.status() == RobotStatus.READY
    robot.disconnect()
    controller.fail_connects = 5
    with pytest.raises(RobotDisconnected, match="192.168.1.10 after 3 attempts.*robot.host"):
        URRobot(hardware_recipe(urcap.port), connect_attempts=3, retry_delay=0.0).connect()


def test_local_control_and_taken_registers_are_explained(controller, urcap) -> None:
    controller.remote = False
    with pytest.raises(RobotError, match="Remote Control"):
        URRobot(hardware_recipe(urcap.port), retry_delay=0.0).connect()
    controller.remote, controller.registers_taken = True, True
    with pytest.raises(RobotError, match="EtherNet/IP"):
        URRobot(hardware_recipe(urcap.port), retry_delay=0.0).connect()


def test_protective_stop_bit_survives_status_polls(controller, urcap, robot) -> None:
    controller.safety_bits |= PS_BIT
    assert robot.status() == RobotStatus.PROTECTIVE_STOP
    robot.recover()
    assert robot.status() == RobotStatus.READY


def test_missing_sdk_names_what_to_install(monkeypatch, urcap) -> None:
    monkeypatch.setitem(sys.modules, "rtde_control", None)
    with pytest.raises(RobotError, match="pip install ur_rtde"):
        URRobot(hardware_recipe(urcap.port)).connect()


def test_digital_inputs_are_read_by_index_and_checked(controller, urcap, robot) -> None:
    """Standard input 3 and tool input 16 high: the loop's next-batch signal reads exactly those."""
    controller.digital_inputs = (1 << 3) | (1 << 16)
    assert [i for i in range(18) if robot.digital_input(i)] == [3, 16]
    with pytest.raises(ValueError, match="inputs 0 to 17"):
        robot.digital_input(18)
    controller.link = False  # a dropped link is re-opened before reading
    assert robot.digital_input(3)
    assert controller.link
