"""The MuJoCo model of the cell: table, reject bin, floating parallel gripper and the loose objects.

The model is rebuilt from an object list whenever the set of objects changes (a new scene, a feeder
batch); compiling takes milliseconds. Geoms are sorted into groups so the camera and the ground truth can
cast rays against exactly what they need: static scenery, the gripper, the objects, and a probe group
that holds one object's geoms while its amodal mask is cast.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import mujoco
import numpy as np

from sorter.cell.sim.shapes import SimObject, geom_size
from sorter.recipe import Recipe

GROUP_STATIC = 0
GROUP_GRIPPER = 1
GROUP_OBJECT = 2
GROUP_PROBE = 3

TIMESTEP = 0.002  # s; MuJoCo's default, stable for 2 cm objects squeezed at up to 80 N
SOLVER_ITERATIONS = 30
LS_ITERATIONS = 8
IMPRATIO = 1.0  # higher values make friction stiffer than the stable limit at TIMESTEP and grasps explode
NOSLIP_ITERATIONS = 2  # no soft-friction creep: lumps stay in the jaws, heaps keep their slopes
SLEEP_TOLERANCE = 0.002  # m/s (rad/s); settled objects sleep and cost nothing until touched
WAKE_SPEED = 1e-4  # m/s given to a teleported object so a sleeping one wakes up (mj_wake)
ROLLING_DAMPING = 3.0  # 1/s, angular damping over rolling inertia: rolling resistance of real produce

TABLE_MARGIN = 0.30  # m of table around the workspace
TABLE_THICKNESS = 0.04
FLOOR_BELOW_TABLE = 0.75  # m, the shop floor under the table
BIN_DEPTH = 0.12
BIN_WALL = 0.012  # thick enough that nothing dropped from the release height tunnels through
BIN_FLOOR = 0.06

PAD_FRICTION = 1.0  # rubber finger pads
PAD_TORSION = 0.004  # m, torsional friction of the pad contact patch
OBJECT_TORSION = 0.005  # m, torsional friction of an object's contact patch (condim 6 objects only)
PAD_ROLLING = 0.003  # m, rolling resistance of a compliant pad: a pinched lump does not roll out
PAD_CONDIM = 6  # pad contacts resist sliding, twisting and rolling (only a few contacts: cheap)
TABLE_FRICTION = 0.6
PALM_HEIGHT = 0.03
PALM_MASS = 1.0
FINGER_MASS = 0.05
FINGER_ARMATURE = 0.5  # kg, reflected inertia of the jaw drive along its slide
OBJECT_SOLREF = (0.006, 1.0)  # s: objects falling 0.2 m into the bin sink < 1 cm instead of 4 cm
STIFF_SOLREF = (0.004, 1.0)  # stiffest stable contact at TIMESTEP: pads squeeze light objects hard
PAD_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)
FINGER_SPEED = 0.25  # m/s closing speed of each physics finger (force / damping)
CARRIAGE_KP = 40000.0  # N/m (N m/rad for yaw) of the position-controlled carriage
CARRIAGE_FORCE = 200.0  # N, force limit of the carriage servos

COLOR_FLOOR = (35, 35, 38)
COLOR_BIN = (150, 40, 30)
COLOR_GRIPPER = (60, 60, 64)

CARRIAGE_JOINTS = ("gx", "gy", "gz", "gyaw")
FINGER_JOINTS = ("finger_l", "finger_r")


@dataclass
class Placement:
    """An object and its body pose (position, wxyz quaternion) and optional velocity."""

    obj: SimObject
    pos: np.ndarray
    quat: np.ndarray
    qvel: np.ndarray | None = None


class SceneModel:
    """A compiled cell model with index maps from objects and gripper parts to MuJoCo ids."""

    def __init__(self, recipe: Recipe, placements: list[Placement]):
        self.recipe = recipe
        self.objects = [p.obj for p in placements]
        spec = build_spec(recipe, placements)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._ray_data: mujoco.MjData | None = None
        self._index()
        self._tune_dofs()
        self.data.qpos[self.carriage_qadr[:3]] = recipe.robot.home
        self.data.ctrl[self.carriage_act[:3]] = recipe.robot.home
        self._place(placements)

    def _index(self) -> None:
        m = self.model
        self.body_of = {o.id: m.body(f"obj{o.id}").id for o in self.objects}
        self.qadr_of = {o.id: int(m.jnt_qposadr[m.body_jntadr[b]]) for o, b in
                        zip(self.objects, self.body_of.values(), strict=True)}
        self.dadr_of = {o.id: int(m.jnt_dofadr[m.body_jntadr[b]]) for o, b in
                        zip(self.objects, self.body_of.values(), strict=True)}
        self.geom_object = np.zeros(m.ngeom, np.int32)
        for oid, b in self.body_of.items():
            self.geom_object[m.body_geomadr[b]:m.body_geomadr[b] + m.body_geomnum[b]] = oid
        self.carriage_qadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in CARRIAGE_JOINTS])
        self.carriage_dadr = np.array([m.jnt_dofadr[m.joint(n).id] for n in CARRIAGE_JOINTS])
        self.finger_qadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in FINGER_JOINTS])
        self.carriage_act = np.array([m.actuator(n).id for n in CARRIAGE_JOINTS])
        self.finger_act = np.array([m.actuator(n).id for n in FINGER_JOINTS])
        self.finger_geoms = {m.geom(n).id for n in ("pad_l", "pad_r")}
        self.gripper_geoms = {g for g in range(m.ngeom) if m.geom_group[g] == GROUP_GRIPPER}
        self.gripper_body = m.body("gripper").id
        self.static_geoms = {g for g in range(m.ngeom)
                             if m.geom_bodyid[g] == 0 and m.geom_group[g] == GROUP_STATIC}

    def _tune_dofs(self) -> None:
        """Angular damping scaled to each object's rolling inertia: viscous rolling resistance for every
        object (kinds with a recipe rolling_friction also get Coulomb rolling friction, condim 6)."""
        m = self.model
        for obj in self.objects:
            b, dadr = self.body_of[obj.id], self.dadr_of[obj.id]
            lever = float(np.sort(obj.extents)[1]) / 2
            m.dof_damping[dadr + 3:dadr + 6] = ROLLING_DAMPING * (m.body_inertia[b] + obj.mass * lever ** 2)

    def _place(self, placements: list[Placement]) -> None:
        d = self.data
        for p in placements:
            q = self.qadr_of[p.obj.id]
            d.qpos[q:q + 3] = p.pos
            d.qpos[q + 3:q + 7] = p.quat
            if p.qvel is not None:
                dv = self.dadr_of[p.obj.id]
                d.qvel[dv:dv + 6] = p.qvel
        mujoco.mj_forward(self.model, d)

    def placements(self) -> list[Placement]:
        """Current poses and velocities of every object, to rebuild the model with the same state."""
        d = self.data
        out = []
        for o in self.objects:
            q, dv = self.qadr_of[o.id], self.dadr_of[o.id]
            out.append(Placement(o, d.qpos[q:q + 3].copy(), d.qpos[q + 3:q + 7].copy(),
                                 d.qvel[dv:dv + 6].copy()))
        return out

    def relabel(self, obj: SimObject) -> None:
        """Replace the description of an object (same id and geometry): its look and identity."""
        k = next(i for i, o in enumerate(self.objects) if o.id == obj.id)
        self.objects[k] = obj
        b = self.body_of[obj.id]
        m = self.model
        m.geom_rgba[m.body_geomadr[b]:m.body_geomadr[b] + m.body_geomnum[b]] = rgba(obj.color)

    def object_pos(self, oid: int) -> np.ndarray:
        q = self.qadr_of[oid]
        return self.data.qpos[q:q + 3].copy()

    def object_quat(self, oid: int) -> np.ndarray:
        q = self.qadr_of[oid]
        return self.data.qpos[q + 3:q + 7].copy()

    def set_object_pose(self, oid: int, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        """Teleport an object (scene setup only) at rest; a tiny downward speed wakes it if asleep."""
        q, dv = self.qadr_of[oid], self.dadr_of[oid]
        self.data.qpos[q:q + 3] = pos
        if quat is not None:
            self.data.qpos[q + 3:q + 7] = quat
        self.data.qvel[dv:dv + 6] = 0.0
        self.data.qvel[dv + 2] = -WAKE_SPEED
        mujoco.mj_forward(self.model, self.data)

    def snapshot(self) -> mujoco.MjData:
        """A full copy of the simulation state (sleep state included)."""
        return copy.copy(self.data)

    def restore(self, snap: mujoco.MjData) -> None:
        mujoco.mj_copyData(self.data, self.model, snap)

    def ray_data(self) -> mujoco.MjData:
        """A second ``MjData`` holding the current state, for a thread casting rays beside the one that
        uses ``data`` (MuJoCo uses the data it is given as scratch space while casting)."""
        if self._ray_data is None:
            self._ray_data = mujoco.MjData(self.model)
        mujoco.mj_copyData(self._ray_data, self.model, self.data)
        return self._ray_data


def build_spec(recipe: Recipe, placements: list[Placement]) -> mujoco.MjSpec:
    """The MjSpec of the cell holding ``placements``."""
    spec = mujoco.MjSpec()
    spec.modelname = "sorter_cell"
    _set_options(spec)
    _add_table(spec, recipe)
    _add_bin(spec, recipe)
    _add_gripper(spec, recipe)
    for p in placements:
        _add_object(spec, p.obj)
    return spec


def _set_options(spec: mujoco.MjSpec) -> None:
    opt = spec.option
    opt.timestep = TIMESTEP
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    opt.iterations = SOLVER_ITERATIONS
    opt.ls_iterations = LS_ITERATIONS
    opt.impratio = IMPRATIO
    opt.noslip_iterations = NOSLIP_ITERATIONS
    opt.sleep_tolerance = SLEEP_TOLERANCE
    opt.enableflags |= mujoco.mjtEnableBit.mjENBL_SLEEP
    spec.compiler.autolimits = True
    spec.stat.extent = 1.5
    spec.stat.center = [0.5, 0.0, 0.0]


def rgba(color: tuple[int, int, int] | np.ndarray) -> list[float]:
    return [float(c) / 255.0 for c in color] + [1.0]


def table_rectangles(recipe: Recipe) -> list[tuple[float, float, float, float]]:
    """Table top as (x0, y0, x1, y1) rectangles: workspace plus margin, less the bin's footprint."""
    g = recipe.workspace.grid()
    t = (g.x_min - TABLE_MARGIN, g.y_min - TABLE_MARGIN, g.x_max + TABLE_MARGIN, g.y_max + TABLE_MARGIN)
    b = bin_outer(recipe)
    bin_bottom = recipe.reject_bin.position[2] - BIN_DEPTH - BIN_FLOOR
    if bin_bottom >= recipe.workspace.table_z or b[0] >= t[2] or b[2] <= t[0] or b[1] >= t[3] or b[3] <= t[1]:
        return [t]
    parts = [(t[0], t[1], t[2], b[1]), (t[0], b[3], t[2], t[3]),
             (t[0], b[1], b[0], b[3]), (b[2], b[1], t[2], b[3])]
    return [p for p in parts if p[2] - p[0] > 1e-4 and p[3] - p[1] > 1e-4]


def bin_outer(recipe: Recipe) -> tuple[float, float, float, float]:
    """The bin's outer footprint (x0, y0, x1, y1) including its walls."""
    cx, cy, _ = recipe.reject_bin.position
    sx, sy = recipe.reject_bin.size
    return (cx - sx / 2 - BIN_WALL, cy - sy / 2 - BIN_WALL, cx + sx / 2 + BIN_WALL, cy + sy / 2 + BIN_WALL)


def _add_table(spec: mujoco.MjSpec, recipe: Recipe) -> None:
    z = recipe.workspace.table_z
    color = rgba(recipe.sim.table_color)
    for i, (x0, y0, x1, y1) in enumerate(table_rectangles(recipe)):
        spec.worldbody.add_geom(
            name=f"table{i}", type=mujoco.mjtGeom.mjGEOM_BOX, group=GROUP_STATIC, rgba=color,
            size=[(x1 - x0) / 2, (y1 - y0) / 2, TABLE_THICKNESS / 2],
            pos=[(x0 + x1) / 2, (y0 + y1) / 2, z - TABLE_THICKNESS / 2],
            friction=[TABLE_FRICTION, 0.005, 1e-4])
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, group=GROUP_STATIC,
                            size=[3, 3, 0.1], pos=[0.5, 0, z - FLOOR_BELOW_TABLE], rgba=rgba(COLOR_FLOOR))


def _add_bin(spec: mujoco.MjSpec, recipe: Recipe) -> None:
    cx, cy, cz = recipe.reject_bin.position
    sx, sy = recipe.reject_bin.size
    hw, hd = BIN_WALL / 2, BIN_DEPTH / 2
    floor = BIN_FLOOR / 2
    walls = [((cx, cy, cz - BIN_DEPTH - floor), (sx / 2 + BIN_WALL, sy / 2 + BIN_WALL, floor)),
             ((cx - sx / 2 - hw, cy, cz - hd), (hw, sy / 2 + BIN_WALL, hd)),
             ((cx + sx / 2 + hw, cy, cz - hd), (hw, sy / 2 + BIN_WALL, hd)),
             ((cx, cy - sy / 2 - hw, cz - hd), (sx / 2, hw, hd)),
             ((cx, cy + sy / 2 + hw, cz - hd), (sx / 2, hw, hd))]
    for i, (pos, size) in enumerate(walls):
        spec.worldbody.add_geom(name=f"bin{i}", type=mujoco.mjtGeom.mjGEOM_BOX, group=GROUP_STATIC,
                                pos=list(pos), size=list(size), rgba=rgba(COLOR_BIN))


def _add_gripper(spec: mujoco.MjSpec, recipe: Recipe) -> None:
    """A floating carriage (x, y, z slides and a yaw hinge at the fingertip centre) with two fingers.

    The carriage frame's x axis is the jaw line; the fingers slide along it, driven by a constant
    closing or opening force (the recipe's grip force) against joint damping that sets their speed.
    """
    gr = recipe.gripper
    body = spec.worldbody.add_body(name="gripper", gravcomp=1.0)
    for name, axis in zip(CARRIAGE_JOINTS, ([1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]), strict=True):
        kind = mujoco.mjtJoint.mjJNT_HINGE if name == "gyaw" else mujoco.mjtJoint.mjJNT_SLIDE
        body.add_joint(name=name, type=kind, axis=axis, armature=0.01 if name == "gyaw" else 0.0)
    half_x = gr.max_opening / 2 + gr.pad_thickness
    body.add_geom(name="palm", type=mujoco.mjtGeom.mjGEOM_BOX, group=GROUP_GRIPPER, mass=PALM_MASS,
                  size=[half_x, gr.pad_width / 2 + 0.004, PALM_HEIGHT / 2],
                  pos=[0, 0, gr.finger_length + PALM_HEIGHT / 2], rgba=rgba(COLOR_GRIPPER))
    for side, sign in (("l", -1.0), ("r", 1.0)):
        finger = body.add_body(name=f"finger_{side}", gravcomp=1.0)
        finger.add_joint(name=f"finger_{side}", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[sign, 0, 0],
                         range=[0.0, gr.max_opening / 2], damping=gr.force / FINGER_SPEED,
                         armature=FINGER_ARMATURE, solref_limit=list(STIFF_SOLREF))
        finger.add_geom(name=f"pad_{side}", type=mujoco.mjtGeom.mjGEOM_BOX, group=GROUP_GRIPPER,
                        mass=FINGER_MASS, condim=PAD_CONDIM, priority=1,
                        friction=[PAD_FRICTION, PAD_TORSION, PAD_ROLLING],
                        solref=list(STIFF_SOLREF), solimp=list(PAD_SOLIMP),
                        size=[gr.pad_thickness / 2, gr.pad_width / 2, gr.finger_length / 2],
                        pos=[sign * gr.pad_thickness / 2, 0, gr.finger_length / 2], rgba=rgba(COLOR_GRIPPER))
    spec.add_exclude(bodyname1="finger_l", bodyname2="finger_r")
    _add_gripper_actuators(spec, recipe)


def _add_gripper_actuators(spec: mujoco.MjSpec, recipe: Recipe) -> None:
    carriage_mass = PALM_MASS + 2 * FINGER_MASS
    for name in CARRIAGE_JOINTS:
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        inertia = 0.01 if name == "gyaw" else carriage_mass
        kp = CARRIAGE_KP * (0.05 if name == "gyaw" else 1.0)
        act.set_to_position(kp=kp, kv=2.0 * np.sqrt(kp * inertia))
        act.forcelimited = True
        act.forcerange = [-CARRIAGE_FORCE, CARRIAGE_FORCE]
    force = recipe.gripper.force
    for name in FINGER_JOINTS:
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_motor()
        act.ctrllimited = True
        act.ctrlrange = [-force, force]


def _add_object(spec: mujoco.MjSpec, obj: SimObject) -> None:
    body = spec.worldbody.add_body(name=f"obj{obj.id}")
    body.add_freejoint(name=f"obj{obj.id}")
    geom = body.add_geom(name=f"obj{obj.id}", group=GROUP_OBJECT, mass=obj.mass, rgba=rgba(obj.color),
                         friction=[obj.friction, OBJECT_TORSION, max(obj.rolling_friction, 1e-4)],
                         condim=6 if obj.rolling_friction > 0 else 3, solref=list(OBJECT_SOLREF))
    if obj.shape == "mesh":
        spec.add_mesh(name=f"mesh{obj.id}", uservert=np.asarray(obj.mesh_vertices, float).ravel().tolist())
        geom.type = mujoco.mjtGeom.mjGEOM_MESH
        geom.meshname = f"mesh{obj.id}"
    else:
        geom.type = getattr(mujoco.mjtGeom, f"mjGEOM_{obj.shape.upper()}")
        geom.size = geom_size(obj)
