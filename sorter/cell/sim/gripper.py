"""Physical control of the floating parallel gripper: servo moves, guarded descents, jaw closing.

The carriage is driven by position servos whose targets are ramped along straight lines; the jaws close
with a constant force and stop on whatever they meet. Nothing is ever attached to the gripper: a held
object stays only through contact and friction. Moves through free space above everything may be made
instantly (the arm's time is modelled separately); anything that can touch an object is simulated.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from sorter.cell.sim.motion import trapezoid_time
from sorter.cell.sim.scene import SceneModel

CHUNK = 5  # physics steps between servo target updates
DESCENT_SPEED = 0.25  # m/s of the physics gripper on guarded moves
FREE_SPEED = 0.6  # m/s of the physics gripper on moves that carry nothing
FREE_ACCELERATION = 4.0  # m/s^2 of the physics gripper on moves that carry nothing
CONTACT_DEPTH = 0.0005  # m of penetration that counts as touching
JAW_STALL_SPEED = 0.002  # m/s; the jaws count as stopped below this
JAW_TIMEOUT = 0.6  # s of physics allowed for the jaws to open or close
JAW_MIN_TIME = 0.03  # s before the jaws may count as stopped
YAW_PATH = 0.05  # m of servo path per radian when the wrist mainly turns
HOLD_SETTLE = 0.06  # s of physics after a move for the servos to settle
PRESS_ANGLE = math.radians(60)  # contacts pressing within this of the jaw axis carry the squeeze


class GripperRig:
    """The gripper of one compiled scene: teleport in free space, physical moves near objects."""

    def __init__(self, scene: SceneModel):
        self.scene = scene
        self.m, self.d = scene.model, scene.data
        self.force = float(self.m.actuator_ctrlrange[scene.finger_act[0], 1])
        self.max_half = float(self.m.jnt_range[self.m.joint("finger_l").id, 1])
        self._finger_dofs = self.m.jnt_dofadr[[self.m.joint(n).id for n in ("finger_l", "finger_r")]]
        self.on_step = None

    @property
    def pose(self) -> np.ndarray:
        """Carriage (x, y, z, yaw) of the fingertip centre."""
        return self.d.qpos[self.scene.carriage_qadr].copy()

    @property
    def width(self) -> float:
        """Current opening between the pads (m)."""
        return float(self.d.qpos[self.scene.finger_qadr].sum())

    def teleport(self, xyz: np.ndarray, yaw: float, jaw_half: float | None = None) -> None:
        """Place the gripper at rest in free space (the caller checked the path is clear); with
        ``jaw_half``, the jaws too, held open (> 0) or shut (0) by the drive."""
        sc, d = self.scene, self.d
        d.qpos[sc.carriage_qadr] = [*xyz, yaw]
        d.qvel[sc.carriage_dadr] = 0.0
        d.ctrl[sc.carriage_act] = [*xyz, yaw]
        if jaw_half is not None:
            d.qpos[sc.finger_qadr] = jaw_half
            d.qvel[self._finger_dofs] = 0.0
            d.ctrl[sc.finger_act] = self.force if jaw_half > 0 else -self.force
        mujoco.mj_forward(self.m, d)

    def step(self, n: int) -> None:
        mujoco.mj_step(self.m, self.d, n)
        if self.on_step is not None:
            self.on_step(n)

    def move(self, xyz: np.ndarray, yaw: float | None = None, speed: float = FREE_SPEED,
             guarded: bool = False, stop_after: float | None = None,
             acceleration: float = FREE_ACCELERATION) -> bool:
        """Move the fingertip centre along a straight line; with ``guarded``, stop at first contact.

        Returns True when the move stopped on contact. ``stop_after`` cuts the move short after that
        fraction of its length (a protective stop).
        """
        start = self.d.ctrl[self.scene.carriage_act].copy()
        goal = np.array([*xyz, start[3] if yaw is None else yaw])
        for target in _ramp(start, goal, speed, acceleration, self.m.opt.timestep * CHUNK, stop_after):
            self.d.ctrl[self.scene.carriage_act] = target
            self.step(CHUNK)
            if guarded and self.touching():
                self.d.ctrl[self.scene.carriage_act] = self.pose
                self.step(CHUNK)
                return True
        self.step(int(HOLD_SETTLE / self.m.opt.timestep))
        return False

    def touching(self) -> bool:
        """True when any gripper geom penetrates anything by more than CONTACT_DEPTH."""
        con = self.d.contact
        n = self.d.ncon
        if n == 0:
            return False
        g = con.geom[:n]
        mine = np.isin(g, list(self.scene.gripper_geoms)).any(axis=1)
        return bool(np.any(mine & (con.dist[:n] < -CONTACT_DEPTH)))

    def jaws(self, closing: bool) -> None:
        """Drive both jaws with the recipe force until they stall (or reach their limit)."""
        self.d.ctrl[self.scene.finger_act] = self.force if not closing else -self.force
        self.settle_jaws()

    def settle_jaws(self) -> None:
        """Step until the jaws stand still, as the real gripper's status settles before it is read."""
        dofs = self._finger_dofs
        elapsed = 0.0
        while elapsed < JAW_TIMEOUT:
            self.step(CHUNK)
            elapsed += CHUNK * self.m.opt.timestep
            if elapsed > JAW_MIN_TIME and np.all(np.abs(self.d.qvel[dofs]) < JAW_STALL_SPEED):
                break

    def loosen(self, opening: float) -> None:
        """Open the jaws by ``opening`` metres and hold them there (an injected slip)."""
        target = self.width + opening
        self.d.ctrl[self.scene.finger_act] = self.force
        elapsed = 0.0
        while self.width < target and elapsed < JAW_TIMEOUT:
            self.step(CHUNK)
            elapsed += CHUNK * self.m.opt.timestep
        self.d.ctrl[self.scene.finger_act] = 0.0

    def pad_contacts(self) -> dict[int, set[int]]:
        """Object ids touching each pad: {pad geom id: {object ids}}."""
        out: dict[int, set[int]] = {g: set() for g in self.scene.finger_geoms}
        n = self.d.ncon
        if n == 0:
            return out
        g = self.d.contact.geom[:n]
        obj = self.scene.geom_object
        for a, b in g:
            if a in out and obj[b]:
                out[a].add(int(obj[b]))
            elif b in out and obj[a]:
                out[b].add(int(obj[a]))
        return out

    def held_objects(self) -> set[int]:
        """Objects squeezed between the pads: one touching both, or a row of them pinched as one (a
        lump, the slate beside it, another lump: each pad touches only its end of the row). The objects
        reached from both pads through contacts that press along the jaw axis; an item merely riding
        on top of the held ones (pressing down, not along) is carried but not held."""
        pads = list(self.pad_contacts().values())
        if len(pads) != 2:
            return set()
        pressing = self.pressing_contacts(self.jaw_axis())
        return _linked(pads[0], pressing) & _linked(pads[1], pressing)

    def jaw_axis(self) -> np.ndarray:
        """Unit vector from one pad to the other (world frame)."""
        a, b = (self.d.geom_xpos[g] for g in sorted(self.scene.finger_geoms))
        axis = np.asarray(b - a, float)
        norm = float(np.linalg.norm(axis))
        if norm < 1e-6:  # jaws shut: the carriage's yaw gives the closing direction
            yaw = float(self.pose[3])
            return np.array([math.cos(yaw), math.sin(yaw), 0.0])
        return axis / norm

    def pressing_contacts(self, along: np.ndarray) -> dict[int, set[int]]:
        """Object ids each object touches (objects only: no table, bin or gripper) through a contact
        whose normal lies within ``PRESS_ANGLE`` of ``along``."""
        out: dict[int, set[int]] = {}
        n = self.d.ncon
        obj = self.scene.geom_object
        normals = self.d.contact.frame[:n, :3]
        for (a, b), normal in zip(self.d.contact.geom[:n], normals, strict=True):
            oa, ob = int(obj[a]), int(obj[b])
            if not (oa and ob and oa != ob):
                continue
            if abs(float(normal @ along)) < math.cos(PRESS_ANGLE):
                continue
            out.setdefault(oa, set()).add(ob)
            out.setdefault(ob, set()).add(oa)
        return out


def _linked(start: set[int], touching: dict[int, set[int]]) -> set[int]:
    """``start`` and every object reached from it through ``touching``."""
    seen, todo = set(start), list(start)
    while todo:
        for other in touching.get(todo.pop(), ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _ramp(start: np.ndarray, goal: np.ndarray, speed: float, accel: float, dt: float,
          stop_after: float | None) -> list[np.ndarray]:
    """Servo targets every ``dt`` along a trapezoidal profile from start to goal (x, y, z, yaw)."""
    delta = goal - start
    dist = float(np.linalg.norm(delta[:3]))
    ang = abs(float(delta[3]))
    length = max(dist, ang * YAW_PATH)
    if length < 1e-6:
        return [goal]
    total = trapezoid_time(length, speed, accel)
    n = max(1, math.ceil(total / dt))
    fractions = [_profile(k / n, length, speed, accel, total) for k in range(1, n + 1)]
    if stop_after is not None:
        fractions = [f for f in fractions if f <= stop_after] or [0.0]
    return [start + delta * f for f in fractions]


def _profile(s: float, length: float, speed: float, accel: float, total: float) -> float:
    """Fraction of the path covered at time fraction ``s`` of a trapezoidal profile."""
    t = s * total
    v = min(speed, math.sqrt(length * accel))
    ta = v / accel
    if t < ta:
        d = 0.5 * accel * t * t
    elif t > total - ta:
        r = total - t
        d = length - 0.5 * accel * r * r
    else:
        d = 0.5 * accel * ta * ta + v * (t - ta)
    return min(1.0, max(0.0, d / length))
