"""Stand-ins for the ur_rtde modules (rtde_control, rtde_receive, dashboard_client), used only at the SDK
boundary: ``install(monkeypatch, controller)`` puts them in ``sys.modules``.

All three talk to one ``Controller`` that keeps the arm's state. Motion advances a fixed step per progress
poll (no clocks), and scripted events happen halfway through a chosen move: a protective stop, a dropped
network link, or contact with a surface during a guarded descent.
"""

from __future__ import annotations

import math
import sys
import types

import numpy as np

PS_BIT, NORMAL_BIT = 1 << 2, 1 << 0
RUNNING = 7


class Controller:
    """The UR controller as the three interfaces see it."""

    step = 0.05  # m the tool advances per progress poll

    def __init__(self, home=(0.35, -0.40, 0.40)):
        self.pose = [*home, math.pi, 0.0, 0.0]
        self.target: list[float] | None = None
        self.safety_bits = NORMAL_BIT
        self.robot_mode = RUNNING
        self.remote = True
        self.polyscope = "URSoftware 5.11.1.108318 (Mar 22 2022)"
        self.link = True
        self.program_running = True
        self.registers_taken = False
        self.digital_inputs = 0  # bit mask of the controller's digital inputs
        self.fail_connects = 0  # dashboard connection attempts refused before one succeeds
        self.link_down_attempts = 0  # reconnect attempts refused before the link is back
        self.protective_stop_in_move: int | None = None  # 1-based moveL index stopped halfway
        self.drop_link_in_move: int | None = None
        self.contact_top: float | None = None  # z of a surface that guarded descents stop on
        self.on_poll = None  # callback run on every progress poll
        self.moves: list[tuple[list[float], float, float]] = []
        self.contact_detection = False
        self.contacts: list[list[float]] = []
        self.tcp: list[float] | None = None
        self.payload: tuple[float, list[float]] | None = None
        self.dashboard_log: list[str] = []
        self.stops = 0
        self.control_instances = 0
        self.reuploads = 0
        self._start: np.ndarray | None = None

    def move(self, pose, speed, acceleration) -> bool:
        if not self.link or self.safety_bits & PS_BIT or not self.program_running:
            return False
        self.moves.append((list(pose), speed, acceleration))
        self.target, self._start = list(pose), np.asarray(self.pose[:3])
        return True

    def progress(self) -> int:
        if self.on_poll is not None:
            self.on_poll(self)
        if self.target is None:
            return -1
        self._advance()
        return 0

    def _advance(self) -> None:
        here, goal = np.asarray(self.pose[:3]), np.asarray(self.target[:3])
        gap = float(np.linalg.norm(goal - here))
        new = goal if gap <= self.step else here + (goal - here) / gap * self.step
        descending = goal[2] < here[2]
        if (self.contact_detection and descending and self.contact_top is not None
                and new[2] <= self.contact_top < here[2]):
            new[2] = self.contact_top
            self.pose = [*new, *self.target[3:]]
            self.contacts.append(list(self.pose))
            self.target = None
            return
        halfway = np.linalg.norm(new - self._start) >= np.linalg.norm(goal - self._start) / 2
        index = len(self.moves)
        self.pose = [*new, *self.target[3:]]
        if halfway and index == self.protective_stop_in_move:
            self.safety_bits |= PS_BIT
            self.target = None
        elif halfway and index == self.drop_link_in_move:
            self.link = False
            self.target = None
        elif gap <= self.step:
            self.target = None

    def reconnect(self) -> bool:
        if self.link_down_attempts > 0:
            self.link_down_attempts -= 1
            raise RuntimeError("Error: Could not connect to: fake at 30004, verify the IP")
        self.link = True
        return True


def install(monkeypatch, controller: Controller) -> None:
    """Replace the ur_rtde modules with stand-ins bound to ``controller``."""
    monkeypatch.setitem(sys.modules, "rtde_control", _control_module(controller))
    monkeypatch.setitem(sys.modules, "rtde_receive", _receive_module(controller))
    monkeypatch.setitem(sys.modules, "dashboard_client", _dashboard_module(controller))


def _control_module(c: Controller) -> types.ModuleType:
    class RTDEControlInterface:
        def __init__(self, hostname: str, *args, **kwargs):
            if c.registers_taken:
                raise RuntimeError("One of the RTDE input registers are already in use! Currently you "
                                   "must disable the EtherNet/IP adapter, PROFINET or any MODBUS unit "
                                   "configured on the robot.")
            c.control_instances += 1

        def isConnected(self) -> bool:
            return c.link

        def reconnect(self) -> bool:
            return c.reconnect()

        def disconnect(self) -> None:
            pass

        def stopScript(self) -> None:
            c.program_running = False

        def isProgramRunning(self) -> bool:
            return c.program_running

        def reuploadScript(self) -> bool:
            c.reuploads += 1
            c.program_running = True
            return True

        def setTcp(self, offset) -> bool:
            c.tcp = list(offset)
            return True

        def setPayload(self, mass, cog) -> bool:
            c.payload = (mass, list(cog))
            return True

        def moveL(self, pose, speed=0.25, acceleration=1.2, asynchronous=False) -> bool:
            assert asynchronous, "the adapter must move asynchronously so a stop can interrupt"
            return c.move(pose, speed, acceleration)

        def stopL(self, a=10.0, asynchronous=False) -> None:
            c.stops += 1
            c.target = None

        def getAsyncOperationProgress(self) -> int:
            return c.progress()

        def startContactDetection(self, direction) -> bool:
            c.contact_detection = True
            return True

        def stopContactDetection(self) -> bool:
            c.contact_detection = False
            return bool(c.contacts)

        def readContactDetection(self) -> bool:
            return c.contact_detection and bool(c.contacts) and c.contacts[-1] == c.pose

    return types.SimpleNamespace(RTDEControlInterface=RTDEControlInterface)


def _receive_module(c: Controller) -> types.ModuleType:
    class RTDEReceiveInterface:
        def __init__(self, hostname: str, *args, **kwargs):
            pass

        def isConnected(self) -> bool:
            return c.link

        def reconnect(self) -> bool:
            return c.reconnect()

        def disconnect(self) -> None:
            pass

        def getSafetyStatusBits(self) -> int:
            return c.safety_bits

        def getRobotMode(self) -> int:
            return c.robot_mode

        def getActualTCPPose(self) -> list[float]:
            return list(c.pose)

        def getActualDigitalInputBits(self) -> int:
            return c.digital_inputs

        def getActualTCPSpeed(self) -> list[float]:
            return [0.1, 0.0, 0.0, 0.0, 0.0, 0.0] if c.target is not None else [0.0] * 6

    return types.SimpleNamespace(RTDEReceiveInterface=RTDEReceiveInterface)


def _dashboard_module(c: Controller) -> types.ModuleType:
    class DashboardClient:
        def __init__(self, hostname: str, port: int = 29999, verbose: bool = False):
            self.connected = False

        def connect(self, timeout_ms: int = 2000) -> None:
            if c.fail_connects > 0:
                c.fail_connects -= 1
                raise RuntimeError("Timeout connecting to UR dashboard server.")
            self.connected = True

        def disconnect(self) -> None:
            self.connected = False

        def polyscopeVersion(self) -> str:
            return c.polyscope

        def isInRemoteControl(self) -> bool:
            return c.remote

        def closeSafetyPopup(self) -> None:
            c.dashboard_log.append("closeSafetyPopup")

        def unlockProtectiveStop(self) -> None:
            c.dashboard_log.append("unlockProtectiveStop")
            c.safety_bits &= ~PS_BIT
            c.program_running = False  # a protective stop ends the running script

    return types.SimpleNamespace(DashboardClient=DashboardClient)
