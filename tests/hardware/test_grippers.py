"""Gripper adapters against loopback servers speaking the Robotiq URCap and Compute Box Modbus protocols."""

from __future__ import annotations

import socket

import pytest

from sorter.cell.base import GripperError
from sorter.cell.grippers import OnRobotRG2, RobotiqURCap, make_gripper
from sorter.recipe import GripperSpec
from tests.hardware.fake_grippers import ComputeBoxServer, RobotiqURCapServer


@pytest.fixture
def urcap():
    with RobotiqURCapServer() as server:
        yield server


def _robotiq(server: RobotiqURCapServer, **kwargs) -> RobotiqURCap:
    gripper = RobotiqURCap("127.0.0.1", server.port, motion_timeout=2.0, **kwargs)
    gripper.connect()
    return gripper


def test_activation_calibrates_the_stroke_and_leaves_fingers_open(urcap) -> None:
    gripper = _robotiq(urcap)
    gripper.activate()
    assert (gripper.open_count, gripper.closed_count) == (urcap.OPEN, urcap.CLOSED)
    assert urcap.vars["STA"] == 3
    assert gripper.width() == pytest.approx(0.085)
    assert "SET ACT 1" in urcap.commands
    gripper.disconnect()


def test_grasp_on_an_object_reports_its_width_and_holds(urcap) -> None:
    gripper = _robotiq(urcap, force=60.0)
    gripper.activate()
    urcap.place_object(0.030)
    width = gripper.close()
    assert width == pytest.approx(0.030, abs=0.0005)
    assert gripper.held()
    assert urcap.vars["FOR"] == 47  # (60 N - 20 N) / (235 N - 20 N) * 255
    urcap.drop_object()
    assert not gripper.held()
    assert gripper.width() < 0.001


def test_closing_on_nothing_is_not_a_grasp(urcap) -> None:
    gripper = _robotiq(urcap)
    gripper.activate()
    assert gripper.close() == pytest.approx(0.0, abs=1e-6)
    assert not gripper.held()
    assert gripper.open() == pytest.approx(0.085)


def test_object_in_the_fingers_during_calibration_is_refused(urcap) -> None:
    urcap.place_object(0.040)
    gripper = _robotiq(urcap)
    with pytest.raises(GripperError, match="between the Robotiq fingers"):
        gripper.activate()


def test_moving_without_activation_reports_the_fault(urcap) -> None:
    gripper = _robotiq(urcap)
    with pytest.raises(GripperError, match="0x07.*activation bit"):
        gripper.close()


def test_fault_during_closing_is_raised(urcap) -> None:
    gripper = _robotiq(urcap)
    gripper.activate()
    urcap.fault_on_close = 0x0E
    with pytest.raises(GripperError, match="overcurrent"):
        gripper.close()
    assert gripper.fault() == "overcurrent triggered"


def test_unreachable_urcap_names_host_and_what_to_check() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GripperError, match=f"127.0.0.1:{port}.*URCap"):
        RobotiqURCap("127.0.0.1", port).connect()


@pytest.fixture
def box():
    with ComputeBoxServer() as server:
        yield server


def test_rg2_grips_and_reports_width_and_contact(box) -> None:
    gripper = OnRobotRG2("127.0.0.1", box.port, max_opening=0.11, force=20.0)
    gripper.connect()
    gripper.activate()
    box.object_width = 400
    assert gripper.close() == pytest.approx(0.040)
    assert gripper.held()
    assert box.registers[0] == 200 and box.registers[2] == 0x10  # 1/10 N target force, grip with offset
    box.object_width = None
    assert gripper.open() == pytest.approx(0.110)
    assert not gripper.held()
    gripper.disconnect()


def test_rg2_safety_switch_blocks_activation(box) -> None:
    box.registers[268] = 0x08
    gripper = OnRobotRG2("127.0.0.1", box.port)
    gripper.connect()
    with pytest.raises(GripperError, match="safety circuit 1"):
        gripper.activate()


def test_rg2_force_above_its_rating_is_refused() -> None:
    with pytest.raises(GripperError, match="exceeds the RG2's 40 N"):
        OnRobotRG2("127.0.0.1", force=60.0)


def test_recipe_picks_the_adapter_and_host() -> None:
    robotiq = make_gripper(GripperSpec(kind="robotiq-2f85", max_opening=0.085), "10.0.0.5")
    assert isinstance(robotiq, RobotiqURCap) and (robotiq.host, robotiq.port) == ("10.0.0.5", 63352)
    rg2 = make_gripper(GripperSpec(kind="onrobot-rg2", max_opening=0.11, force=30, host="192.168.1.1"), "x")
    assert isinstance(rg2, OnRobotRG2) and (rg2.host, rg2.port) == ("192.168.1.1", 502)
    with pytest.raises(GripperError, match="Compute Box"):
        make_gripper(GripperSpec(kind="onrobot-rg2", max_opening=0.11, force=30), "10.0.0.5")
