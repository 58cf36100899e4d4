"""Loopback stand-ins for the gripper controllers, speaking the vendors' wire protocols.

``RobotiqURCapServer`` answers the Robotiq URCap's ASCII socket (``SET VAR v ...`` -> ``ack``, ``GET VAR`` ->
``VAR v``) for a 2F-85 whose fingers advance a fixed number of counts per status read and stop on an object.
``ComputeBoxServer`` answers Modbus TCP (functions 0x03 and 0x10) for an RG2 at unit id 65.
"""

from __future__ import annotations

import socketserver
import struct
import threading


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _LoopbackServer:
    def __init__(self, handler_cls):
        self.lock = threading.Lock()
        owner = self

        class Handler(handler_cls):
            server_owner = owner

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class _URCapHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            reply = self.server_owner.command(raw.decode("ascii").strip())
            self.wfile.write(reply.encode("ascii") + b"\n")


class RobotiqURCapServer(_LoopbackServer):
    """A 2F-85 behind the URCap: fully open at count 3, fully closed at 227 (typical calibrated stroke)."""

    OPEN, CLOSED, STEP = 3, 227, 40

    def __init__(self):
        super().__init__(_URCapHandler)
        self.vars = {"ACT": 0, "GTO": 0, "STA": 0, "POS": self.OPEN, "PRE": 0, "SPE": 0, "FOR": 0,
                     "OBJ": 0, "FLT": 0, "ATR": 0}
        self.object_count: int | None = None  # count at which the fingers touch an object
        self.fault_on_close: int | None = None
        self._activating = 0
        self.commands: list[str] = []

    def place_object(self, width: float, max_opening: float = 0.085) -> None:
        self.object_count = round(self.CLOSED - width / max_opening * (self.CLOSED - self.OPEN))

    def drop_object(self) -> None:
        """The object slips out: closing fingers carry on to fully closed and report it lost."""
        with self.lock:
            self.object_count = None
            if self.vars["OBJ"] == 2:
                self.vars["OBJ"] = 0

    def command(self, line: str) -> str:
        with self.lock:
            self.commands.append(line)
            words = line.split()
            if words[:1] == ["GET"] and len(words) == 2:
                self._advance()
                return f"{words[1]} {self.vars.get(words[1], 0)}"
            if words[:1] == ["SET"] and len(words) >= 3 and len(words) % 2 == 1:
                pairs = dict(zip(words[1::2], map(int, words[2::2]), strict=True))
                self._apply(pairs)
                return "ack"
            return "?"

    def _apply(self, pairs: dict[str, int]) -> None:
        if "ACT" in pairs:
            if pairs["ACT"] == 0:
                self.vars.update(ACT=0, STA=0, GTO=0, FLT=0)
            elif self.vars["ACT"] == 0:
                self.vars.update(ACT=1, STA=1)
                self._activating = 3
        for key in ("POS", "SPE", "FOR"):
            if key in pairs:
                self.vars["PRE" if key == "POS" else key] = pairs[key]
        if pairs.get("GTO") == 1:
            if self.vars["ACT"] == 0:
                self.vars["FLT"] = 0x07
            elif self.vars["STA"] != 3:
                self.vars["FLT"] = 0x05
            else:
                self.vars.update(GTO=1, OBJ=0)
                if self.fault_on_close is not None and self.vars["PRE"] > self.vars["POS"]:
                    self.vars["FLT"] = self.fault_on_close

    def _advance(self) -> None:
        v = self.vars
        if self._activating:
            self._activating -= 1
            if not self._activating:
                v["STA"] = 3
        if v["GTO"] != 1 or v["OBJ"] != 0 or v["FLT"]:
            return
        target = min(max(v["PRE"], self.OPEN), self.CLOSED)
        step = self.STEP if target > v["POS"] else -self.STEP
        new = v["POS"] + step
        if self.object_count is not None and v["POS"] <= self.object_count <= new:
            v.update(POS=self.object_count, OBJ=2)
        elif (step > 0 and new >= target) or (step < 0 and new <= target):
            v.update(POS=target, OBJ=3)
        else:
            v["POS"] = new


class _ModbusHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            header = self._exactly(7)
            if header is None:
                return
            transaction, _, length, unit = struct.unpack(">HHHB", header)
            pdu = self._exactly(length - 1)
            reply = self.server_owner.pdu(unit, pdu)
            self.request.sendall(struct.pack(">HHHB", transaction, 0, len(reply) + 1, unit) + reply)

    def _exactly(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data


class ComputeBoxServer(_LoopbackServer):
    """An RG2 on a Compute Box: widths in 1/10 mm, fingers move 100 (10 mm) per status read."""

    UNIT, STEP = 65, 100

    def __init__(self):
        super().__init__(_ModbusHandler)
        self.registers = {0: 0, 1: 0, 2: 0, 268: 0, 275: 1100}
        self.object_width: int | None = None  # 1/10 mm
        self._target: int | None = None

    def pdu(self, unit: int, pdu: bytes) -> bytes:
        with self.lock:
            function = pdu[0]
            if unit != self.UNIT:
                return bytes([function | 0x80, 0x0B])
            if function == 0x03:
                address, count = struct.unpack(">HH", pdu[1:5])
                self._advance(address)
                values = [self.registers.get(address + i, 0) for i in range(count)]
                return struct.pack(f">BB{count}H", 0x03, 2 * count, *values)
            if function == 0x10:
                address, count, _ = struct.unpack(">HHB", pdu[1:6])
                values = struct.unpack(f">{count}H", pdu[6:6 + 2 * count])
                for i, value in enumerate(values):
                    self.registers[address + i] = value
                if self.registers.get(2) in (0x01, 0x10):
                    self._target = self.registers[1]
                    self.registers[268] = (self.registers[268] | 0x01) & ~0x02
                return struct.pack(">BHH", 0x10, address, count)
            return bytes([function | 0x80, 0x01])

    def _advance(self, address: int) -> None:
        if address != 268 or self._target is None:
            return
        width, target = self.registers[275], self._target
        step = -self.STEP if target < width else self.STEP
        new = width + step
        if step < 0 and self.object_width is not None and new <= self.object_width <= width:
            self.registers[275], self._target = self.object_width, None
            self.registers[268] = (self.registers[268] & ~0x01) | 0x02
        elif (step < 0 and new <= target) or (step > 0 and new >= target):
            self.registers[275], self._target = target, None
            self.registers[268] &= ~0x01
        else:
            self.registers[275] = new
