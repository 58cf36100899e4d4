"""Parallel grippers on the real cell: Robotiq 2F-85 (URCap socket) and OnRobot RG2 (Compute Box Modbus TCP).

Both implement :class:`Gripper`, so the UR adapter reads a grasp the same way for either, and the same way
the simulated cell does: the fingers closed on command and stopped on something before fully closing.
Only the standard library is used; no vendor SDK is needed.
"""

from __future__ import annotations

import abc
import socket
import struct
import threading
import time
from dataclasses import dataclass

from sorter.cell.base import GripperError
from sorter.recipe import GripperSpec

HELD_MIN_WIDTH = 0.003  # m; fingers stopped wider than this hold something (real and simulated cell alike)
POLL_PERIOD = 0.02  # s between status reads while the fingers move


@dataclass(frozen=True)
class GripperState:
    """What the gripper reports now."""

    width: float  # m between the fingertips
    object_detected: bool  # fingers stopped on contact
    moving: bool
    fault: str | None = None


class Gripper(abc.ABC):
    """A parallel gripper: open, close on whatever is between the fingers, report width and contact."""

    max_opening: float

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection; does not move the fingers. Raises GripperError naming what to check."""

    @abc.abstractmethod
    def activate(self) -> None:
        """Make the gripper ready to move (may move the fingers); a no-op when it already is."""

    @abc.abstractmethod
    def state(self) -> GripperState:
        """Read width, contact, motion and fault."""

    @abc.abstractmethod
    def open(self) -> float:
        """Open fully and wait; returns the width reached (m)."""

    @abc.abstractmethod
    def close(self) -> float:
        """Close with the configured force and wait until the fingers stop; returns the width (m)."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the connection; safe to call twice."""

    def width(self) -> float:
        return self.state().width

    def fault(self) -> str | None:
        return self.state().fault

    def held(self) -> bool:
        """True when the fingers stopped on an object short of fully closed (the simulated cell's test)."""
        s = self.state()
        return s.object_detected and s.width > HELD_MIN_WIDTH


def make_gripper(spec: GripperSpec, robot_host: str | None) -> Gripper:
    """The gripper adapter named by the recipe; the host defaults to the robot controller's."""
    if spec.kind == "robotiq-2f85":
        host = spec.host or robot_host
        if not host:
            raise GripperError("gripper.host or robot.host must name the UR controller running the "
                               "Robotiq URCap")
        return RobotiqURCap(host, spec.port, max_opening=spec.max_opening, force=spec.force)
    if spec.kind == "onrobot-rg2":
        if not spec.host:
            raise GripperError("gripper.host must name the OnRobot Compute Box (factory default 192.168.1.1)")
        port = MODBUS_PORT if spec.port == ROBOTIQ_PORT else spec.port
        return OnRobotRG2(spec.host, port, max_opening=spec.max_opening, force=spec.force)
    raise GripperError(f"gripper kind '{spec.kind}' has no hardware adapter; use robotiq-2f85 or onrobot-rg2")


# --- Robotiq 2F-85 through the Robotiq URCap's ASCII socket -------------------------------------------------

ROBOTIQ_PORT = 63352  # Robotiq URCap socket server on the UR controller
ROBOTIQ_FORCE_N = (20.0, 235.0)  # N, grip force at FOR 0 and 255 (Robotiq 2F-85 specifications)
ROBOTIQ_FULL_SPEED = 255  # SPE 255 = 150 mm/s (Robotiq 2F-85 specifications)
ROBOTIQ_STA_ACTIVE = 3  # gSTA: activation completed (2F-85 manual, robot input registers)
ROBOTIQ_OBJ_MOVING = 0  # gOBJ: fingers moving towards the requested position
ROBOTIQ_OBJ_CONTACT_OPENING = 1  # gOBJ: fingers stopped on contact while opening
ROBOTIQ_OBJ_CONTACT_CLOSING = 2  # gOBJ: fingers stopped on contact while closing
ROBOTIQ_FAULTS = {  # gFLT codes (Robotiq 2F-85 manual, fault status)
    0x05: "action delayed: activation must complete first",
    0x07: "the activation bit must be set before moving",
    0x08: "maximum operating temperature exceeded; let it cool down",
    0x09: "no communication for at least 1 s",
    0x0A: "supply voltage under the minimum",
    0x0B: "automatic release in progress",
    0x0C: "internal fault; contact Robotiq support",
    0x0D: "activation fault; check nothing blocks the fingers",
    0x0E: "overcurrent triggered",
    0x0F: "automatic release completed; reset and re-activate the gripper",
}


class RobotiqURCap(Gripper):
    """Robotiq 2F-85 driven through the URCap's socket: ``SET VAR value ...`` answers ``ack``, ``GET VAR``
    answers ``VAR value``. Positions are counts, 0 open to 255 closed; activation calibrates the counts of
    the fully open and fully closed fingers so widths are in metres."""

    def __init__(self, host: str, port: int = ROBOTIQ_PORT, *, max_opening: float = 0.085,
                 force: float = 60.0, timeout: float = 2.0, motion_timeout: float = 5.0):
        self.host, self.port = host, port
        self.max_opening = max_opening
        self._force_count = _scale_to_count(force, *ROBOTIQ_FORCE_N)
        self._timeout, self._motion_timeout = timeout, motion_timeout
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self.open_count, self.closed_count = 0, 255

    def connect(self) -> None:
        if self._sock is not None:
            return
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self._timeout)
        except OSError as exc:
            raise GripperError(
                f"cannot reach the Robotiq URCap at {self.host}:{self.port} ({exc}); check the Robotiq "
                "Grippers URCap is installed on the controller and the gripper is plugged into the tool "
                "flange") from None
        self._buffer = b""

    def disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def activate(self, calibrate: bool = True) -> None:
        """Activate unless already active, then (optionally) measure the open and closed counts."""
        if self._get("STA") != ROBOTIQ_STA_ACTIVE:
            self._set(ACT=0)
            self._set(ACT=1)
            self._wait(lambda: self._get("STA") == ROBOTIQ_STA_ACTIVE, "activation")
        if calibrate:
            self._calibrate()

    def state(self) -> GripperState:
        flt = self._get("FLT")
        obj = self._get("OBJ")
        pos = self._get("POS")
        moving = self._get("GTO") == 1 and obj == ROBOTIQ_OBJ_MOVING
        fault = ROBOTIQ_FAULTS.get(flt, f"fault code 0x{flt:02X}") if flt else None
        detected = obj in (ROBOTIQ_OBJ_CONTACT_OPENING, ROBOTIQ_OBJ_CONTACT_CLOSING)
        return GripperState(self._count_to_width(pos), detected, moving, fault)

    def open(self) -> float:
        return self._count_to_width(self._go(0))

    def close(self) -> float:
        return self._count_to_width(self._go(255))

    def _calibrate(self) -> None:
        open_count = self._go(0)
        closed_count = self._go(255)
        if self._get("OBJ") == ROBOTIQ_OBJ_CONTACT_CLOSING:
            self._go(0)
            raise GripperError("something is between the Robotiq fingers during calibration; remove it and "
                               "connect again")
        if closed_count - open_count < 50:
            raise GripperError(f"Robotiq stroke measured {open_count}..{closed_count} counts; the fingers "
                               "are blocked or mis-mounted")
        self.open_count, self.closed_count = open_count, closed_count
        self._go(0)

    def _go(self, target: int) -> int:
        """Move to a position count and wait until the fingers stop; returns the count reached."""
        self._set(POS=target, SPE=ROBOTIQ_FULL_SPEED, FOR=self._force_count, GTO=1)
        self._wait(lambda: self._get("PRE") == target, "position request")
        self._wait(lambda: self._get("OBJ") != ROBOTIQ_OBJ_MOVING, "finger motion")
        self._raise_on_fault()
        return self._get("POS")

    def _count_to_width(self, count: int) -> float:
        span = max(self.closed_count - self.open_count, 1)
        fraction = (self.closed_count - count) / span
        return max(0.0, min(1.0, fraction)) * self.max_opening

    def _raise_on_fault(self) -> None:
        flt = self._get("FLT")
        if flt:
            text = ROBOTIQ_FAULTS.get(flt, f"fault code 0x{flt:02X}")
            raise GripperError(f"Robotiq gripper fault 0x{flt:02X}: {text}")

    def _wait(self, done, what: str) -> None:
        deadline = time.monotonic() + self._motion_timeout
        while not done():
            self._raise_on_fault()
            if time.monotonic() > deadline:
                raise GripperError(f"Robotiq {what} did not finish within {self._motion_timeout:.0f} s; "
                                   "check the gripper's LED and the URCap's gripper dashboard on the pendant")
            time.sleep(POLL_PERIOD)

    def _set(self, **values: int) -> None:
        command = "SET " + " ".join(f"{k} {int(v)}" for k, v in values.items())
        reply = self._request(command)
        if reply != "ack":
            raise GripperError(f"Robotiq URCap refused '{command}' (answered '{reply}')")

    def _get(self, name: str) -> int:
        reply = self._request(f"GET {name}")
        parts = reply.split()
        if len(parts) != 2 or parts[0] != name or not parts[1].lstrip("-").isdigit():
            raise GripperError(f"unexpected Robotiq URCap answer to 'GET {name}': '{reply}'")
        return int(parts[1])

    def _request(self, line: str) -> str:
        with self._lock:
            if self._sock is None:
                raise GripperError("the gripper is not connected; call connect() first")
            try:
                self._sock.sendall(line.encode("ascii") + b"\n")
                return self._read_line()
            except OSError as exc:
                self.disconnect()
                raise GripperError(
                    f"lost the Robotiq URCap connection at {self.host}:{self.port} ({exc})") from None

    def _read_line(self) -> str:
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(1024)
            if not chunk:
                raise OSError("connection closed by the controller")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("ascii", errors="replace").strip()


def _scale_to_count(value: float, lo: float, hi: float) -> int:
    return int(round(max(0.0, min(1.0, (value - lo) / (hi - lo))) * 255))


# --- OnRobot RG2 through the Compute Box (Modbus TCP) -------------------------------------------------------

MODBUS_PORT = 502
RG2_UNIT_ID = 65  # Modbus unit (slave) id of an RG2 on the Compute Box (OnRobot Modbus TCP register map)
RG2_REG_TARGET_FORCE = 0  # 1/10 N, 0..400
RG2_REG_TARGET_WIDTH = 1  # 1/10 mm, 0..1100
RG2_REG_CONTROL = 2  # 0x0001 grip, 0x0008 stop, 0x0010 grip with fingertip offset
RG2_REG_STATUS = 268  # bits: 0 busy, 1 grip detected, 2-5 safety switches 1/2, 6 safety error
RG2_REG_WIDTH_WITH_OFFSET = 275  # 1/10 mm between the fingertips (set fingertip offset applied)
RG2_CONTROL_GRIP_WITH_OFFSET = 0x0010
RG2_MAX_WIDTH = 0.110  # m (RG2 specifications)
RG2_MAX_FORCE = 40.0  # N (RG2 specifications)
RG2_STATUS_BUSY, RG2_STATUS_GRIP = 0x01, 0x02
RG2_SAFETY_BITS = {
    0x04: "safety switch 1 pushed",
    0x08: "safety circuit 1 triggered (power-cycle the gripper)",
    0x10: "safety switch 2 pushed",
    0x20: "safety circuit 2 triggered (power-cycle the gripper)",
    0x40: "a safety switch was pushed at power-on",
}


class OnRobotRG2(Gripper):
    """OnRobot RG2 on a Compute Box: target force/width/control registers, status and width read back."""

    def __init__(self, host: str, port: int = MODBUS_PORT, *, max_opening: float = RG2_MAX_WIDTH,
                 force: float = RG2_MAX_FORCE, timeout: float = 2.0, motion_timeout: float = 5.0):
        if force > RG2_MAX_FORCE:
            raise GripperError(f"gripper.force {force:g} N exceeds the RG2's {RG2_MAX_FORCE:g} N; lower it "
                               "in the recipe")
        self.host, self.port = host, port
        self.max_opening = min(max_opening, RG2_MAX_WIDTH)
        self._force = int(round(force * 10))
        self._timeout, self._motion_timeout = timeout, motion_timeout
        self._modbus = ModbusTcpClient(host, port, RG2_UNIT_ID, timeout)

    def connect(self) -> None:
        self._modbus.connect()

    def disconnect(self) -> None:
        self._modbus.close()

    def activate(self) -> None:
        """The RG2 needs no activation; refuse to run while a safety circuit is tripped."""
        fault = self.state().fault
        if fault:
            raise GripperError(f"OnRobot RG2: {fault}")

    def state(self) -> GripperState:
        status = self._modbus.read(RG2_REG_STATUS, 1)[0]
        width = self._modbus.read(RG2_REG_WIDTH_WITH_OFFSET, 1)[0] / 10000.0
        faults = [text for bit, text in RG2_SAFETY_BITS.items() if status & bit]
        return GripperState(width, bool(status & RG2_STATUS_GRIP), bool(status & RG2_STATUS_BUSY),
                            "; ".join(faults) or None)

    def open(self) -> float:
        return self._move(self.max_opening)

    def close(self) -> float:
        return self._move(0.0)

    def _move(self, width: float) -> float:
        command = [self._force, int(round(width * 10000)), RG2_CONTROL_GRIP_WITH_OFFSET]
        self._modbus.write(RG2_REG_TARGET_FORCE, command)
        started = time.monotonic()
        seen_busy = False
        while True:
            s = self.state()
            if s.fault:
                raise GripperError(f"OnRobot RG2: {s.fault}")
            seen_busy = seen_busy or s.moving
            settled = not s.moving and (seen_busy or time.monotonic() - started > 0.3)
            if settled:
                return s.width
            if time.monotonic() - started > self._motion_timeout:
                raise GripperError(f"OnRobot RG2 did not finish moving within {self._motion_timeout:.0f} s")
            time.sleep(POLL_PERIOD)


class ModbusTcpClient:
    """The Modbus TCP subset the Compute Box needs: read holding registers (0x03), write multiple (0x10)."""

    def __init__(self, host: str, port: int, unit: int, timeout: float):
        self.host, self.port, self.unit, self.timeout = host, port, unit, timeout
        self._sock: socket.socket | None = None
        self._transaction = 0
        self._lock = threading.Lock()

    def connect(self) -> None:
        if self._sock is not None:
            return
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise GripperError(f"cannot reach the OnRobot Compute Box at {self.host}:{self.port} ({exc}); "
                               "check its Ethernet cable and IP address (gripper.host)") from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def read(self, address: int, count: int) -> list[int]:
        body = self._call(struct.pack(">BHH", 0x03, address, count))
        if len(body) < 2 or body[1] != 2 * count:
            raise GripperError(f"short Modbus reply reading register {address}")
        return list(struct.unpack(f">{count}H", body[2:2 + 2 * count]))

    def write(self, address: int, values: list[int]) -> None:
        payload = struct.pack(f">BHHB{len(values)}H", 0x10, address, len(values), 2 * len(values), *values)
        self._call(payload)

    def _call(self, pdu: bytes) -> bytes:
        with self._lock:
            if self._sock is None:
                raise GripperError("the gripper is not connected; call connect() first")
            self._transaction = (self._transaction + 1) & 0xFFFF
            header = struct.pack(">HHHB", self._transaction, 0, len(pdu) + 1, self.unit)
            try:
                self._sock.sendall(header + pdu)
                reply = self._receive()
            except OSError as exc:
                self.close()
                raise GripperError(
                    f"lost the Compute Box connection at {self.host}:{self.port} ({exc})") from None
        if reply[0] & 0x80:
            code = reply[1] if len(reply) > 1 else 0
            raise GripperError(f"Compute Box refused Modbus function 0x{pdu[0]:02X} (exception code {code}); "
                               "check the RG2 is attached and its unit id is 65")
        return reply

    def _receive(self) -> bytes:
        header = self._exactly(7)
        transaction, _, length, _ = struct.unpack(">HHHB", header)
        body = self._exactly(length - 1)
        if transaction != self._transaction:
            raise OSError(f"Modbus transaction {transaction} answered, {self._transaction} expected")
        return body

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise OSError("connection closed by the Compute Box")
            data += chunk
        return data
