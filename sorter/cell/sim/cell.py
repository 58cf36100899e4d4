"""The simulated cell: one MuJoCo scene with its camera, robot, ground truth and fault injection.

``SimCell(recipe)`` is cheap; ``reset(scenario, seed)`` builds a deterministic scene. The camera and the
robot implement the same interfaces as the real adapters, so the pick loop cannot tell them apart.
Time is simulated: ``time`` grows by the modelled duration of every robot motion, one frame period per
camera read, and the physics time of feeder drops.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mujoco
import numpy as np

from sorter.cell.sim.camera import Background, RayCaster, SimCamera, finish_frame, intrinsics_for
from sorter.cell.sim.gripper import GripperRig
from sorter.cell.sim.robot import SimRobot
from sorter.cell.sim.scenarios import SCENARIOS, build_feeder_batch, counts_for
from sorter.cell.sim.scene import BIN_DEPTH, TIMESTEP, Placement, SceneModel
from sorter.cell.sim.shapes import SimObject, pick_spec, sample_object
from sorter.cell.sim.truth import GroundTruth, ObjectState
from sorter.errors import SorterError
from sorter.geometry import Pose
from sorter.recipe import ObjectSpec, Recipe

SETTLE_MIN = 0.15  # s of physics before a scene may count as settled
SETTLE_MAX = 2.0  # s of physics at most
SETTLE_SPEED = 0.01  # m/s (rad/s scaled by 0.02 m) below which every object counts as at rest
SETTLE_CHUNK = 25  # physics steps between rest checks
ROUGH_STEP = 3  # times the time step while a crowd's waves settle (see rough_physics)
FALLBACK_CAMERA_HEIGHT = 0.70  # m above the workspace centre when a hardware recipe has no sim pose
IN_WORKSPACE_TOP = 0.30  # m above the table; higher objects are in flight, not lying in the workspace
OFF_TABLE_DROP = 0.01  # m below the table top that counts as fallen off


@dataclass
class SimFaults:
    """Faults to inject into the next operations, for testing how the pick loop copes. All off by default."""

    camera_dropouts: int = 0  # the next N camera reads raise CameraTimeout
    protective_stop_next_action: bool = False  # the next execute() stops mid-descent with ProtectiveStop
    slip_next_grasp: bool = False  # the next held item loosens in the jaws and is lost on the way

    def clear(self) -> None:
        self.camera_dropouts = 0
        self.protective_stop_next_action = False
        self.slip_next_grasp = False


class SimCell:
    """The MuJoCo cell for one recipe; call ``reset(scenario, seed)`` before using it."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.camera_pose = _camera_pose(recipe)
        self.faults = SimFaults()
        self.time = 0.0
        self.version = 0
        self.scenario = ""
        self.seed = 0
        self.scene: SceneModel | None = None
        self.rig: GripperRig | None = None
        self.caster: RayCaster | None = None
        self._next_id = 1
        self._visible: np.ndarray | None = None
        self._background: Background | None = None
        self._rough = False
        self.camera = SimCamera(self)
        self.robot = SimRobot(self)
        self.truth = GroundTruth(self)

    def reset(self, scenario: str, seed: int) -> None:
        """Build the scene of ``scenario`` for ``seed``: identical every time for the same pair."""
        counts = counts_for(self.recipe, scenario)
        self.scenario, self.seed = scenario, int(seed)
        self._next_id = 1
        self.faults.clear()
        rng = np.random.default_rng([self.seed, _name_key(scenario)])
        SCENARIOS[scenario].build(self, counts, rng)
        self.time = 0.0
        self.camera.restart()
        self.robot.restart()

    def mark_impurity(self, obj_id: int, spec: ObjectSpec, rng: np.random.Generator) -> None:
        """Give an object the look of impurity kind ``spec`` (colour, texture, name) and flag it as an
        impurity; its shape and physics stay as they are (paper 1 picks its target after the drop)."""
        self._require_scene()
        old = self.scene_object(obj_id)
        color = np.clip(np.asarray(spec.color.mean, float) + rng.normal(0.0, spec.color.spread, 3), 0, 255)
        self.scene.relabel(dataclasses.replace(old, kind=spec.name, is_impurity=True, color=color,
                                               texture=spec.color.texture))
        self.caster = RayCaster(self.scene, self.camera_pose, self.caster.intr, self._background)
        self._visible = None
        self.version += 1

    def set_scene(self, placements: list[Placement], name: str = "custom", seed: int = 0) -> None:
        """A hand-made scene (tests, benchmarks): exactly these objects, let settle."""
        self.scenario, self.seed = name, int(seed)
        self._next_id = max((p.obj.id for p in placements), default=0) + 1
        self.faults.clear()
        self.load(placements)
        self.settle()
        self.time = 0.0
        self.camera.restart()
        self.robot.restart()

    def drop_batch(self, rng: np.random.Generator) -> None:
        """The feeder: clear the bin and strays, drop a new batch onto the workspace and let it settle."""
        self._require_scene()
        start = self.scene.data.time
        build_feeder_batch(self, rng)
        self.advance(self.scene.data.time - start)

    def advance(self, seconds: float) -> None:
        """Move the cell's clock on; any change of state also invalidates cached frames."""
        self.time += float(seconds)
        self.version += 1

    def restart_ids(self) -> None:
        """Number new objects from 1 again (a scenario builder starting over with a fresh scene)."""
        self._next_id = 1

    def make_objects(self, n_items: int, n_impurities: int, rng: np.random.Generator) -> list[SimObject]:
        """New objects with fresh ids: impurities first, then items."""
        out = []
        for is_impurity, n, specs in ((True, n_impurities, self.recipe.sim.impurities),
                                      (False, n_items, self.recipe.sim.items)):
            for _ in range(n):
                out.append(sample_object(pick_spec(specs, rng), self._next_id, is_impurity, rng))
                self._next_id += 1
        return out

    def load(self, placements: list[Placement]) -> None:
        """Compile a scene holding exactly ``placements``; the gripper waits at home."""
        self.scene = SceneModel(self.recipe, placements)
        self.scene.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_AUTORESET
        self.rig = GripperRig(self.scene)
        intr = intrinsics_for(self.recipe)
        if self._background is None or not self._background.matches(self.scene):
            self._background = Background(self.scene, self.camera_pose, intr, self.recipe)
        self.caster = RayCaster(self.scene, self.camera_pose, intr, self._background)
        self._visible = None
        self._apply_physics()
        self.version += 1

    @contextmanager
    def rough_physics(self) -> Iterator[None]:
        """Physics at ``ROUGH_STEP`` times the time step, for a builder's intermediate settles.

        A crowd is dropped in waves, each settled before the next is released on top; at a coarser step
        a wave costs proportionally fewer physics steps. The builder settles the finished scene again
        after leaving this block, at the physics the primitives use, and checks it only then: every
        scene is handed over at rest under that physics.
        """
        self._rough = True
        self._apply_physics()
        try:
            yield
        finally:
            self._rough = False
            self._apply_physics()

    def _apply_physics(self) -> None:
        if self.scene is None:
            return
        self.scene.model.opt.timestep = TIMESTEP * (ROUGH_STEP if self._rough else 1)

    def settle(self, limit: float = SETTLE_MAX) -> float:
        """Run physics until every object rests (at most ``limit`` s); returns the simulated seconds."""
        self._require_scene()
        m, d = self.scene.model, self.scene.data
        start = d.time
        dofs = np.array([self.scene.dadr_of[o.id] for o in self.scene.objects], dtype=np.int64)
        lin = (dofs[:, None] + np.arange(3)).ravel()
        ang = (dofs[:, None] + np.arange(3, 6)).ravel()
        while d.time - start < limit:
            mujoco.mj_step(m, d, SETTLE_CHUNK)
            if d.time - start < SETTLE_MIN or len(dofs) == 0:
                continue
            speed = max(np.abs(d.qvel[lin]).max(), 0.02 * np.abs(d.qvel[ang]).max())
            if speed < SETTLE_SPEED:
                break
        self._check_finite()
        self.version += 1
        return d.time - start

    def _check_finite(self) -> None:
        if not np.all(np.isfinite(self.scene.data.qpos)):
            raise SorterError("the simulation became unstable (non-finite state); report the recipe, "
                              f"scenario '{self.scenario}' and seed {self.seed}")

    def _require_scene(self) -> None:
        if self.scene is None:
            raise SorterError("the simulated cell has no scene yet; call reset(scenario, seed) first")

    def render_frame(self, sequence: int) -> tuple[np.ndarray, np.ndarray]:
        """Colour and depth images of the current state; remembers the frame's visible object ids."""
        self._require_scene()
        geom, dist, normal = self.caster.hits()
        self._remember_visible(geom)
        rng = np.random.default_rng([self.seed, _name_key(self.scenario), sequence, 7])
        noise = self.recipe.sim.camera_noise
        return finish_frame(self.caster, geom, dist, normal, (noise.depth_std_at_1m, noise.edge_dropout), rng)

    def _remember_visible(self, geom: np.ndarray) -> None:
        intr = self.caster.intr
        self._visible = self.caster.object_ids(geom).reshape(intr.height, intr.width)

    def visible_ids(self) -> np.ndarray:
        """Object ids per pixel of the last frame (of the current state when no frame was rendered)."""
        self._require_scene()
        if self._visible is None:
            self._remember_visible(self.caster.hits()[0])
        return self._visible

    def visible_counts(self) -> dict[int, int]:
        """Visible pixels per object in the current state (noise-free), without rendering a frame."""
        self._require_scene()
        geom = self.caster.hits()[0]
        ids = self.scene.geom_object[geom[geom >= 0]]
        values, counts = np.unique(ids[ids > 0], return_counts=True)
        return dict(zip(values.tolist(), counts.tolist(), strict=True))

    def scene_object(self, obj_id: int) -> SimObject:
        return next(o for o in self.scene.objects if o.id == obj_id)

    def hit_points(self, around: list[int] | None = None, inflate: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Object id (0 for scenery) and world point of the pixel rays that hit, current state.

        With ``around``, only the pixels near those objects (bounding spheres times ``inflate``).
        """
        self._require_scene()
        if around is None:
            idx = np.arange(self.caster.n)
        else:
            geoms = np.concatenate([self._geoms_of(i) for i in around])
            idx = self.caster.pixels_covering(geoms, inflate)
        geom, dist = self.caster.hits_at(idx)
        hit = geom >= 0
        points = self.caster.origin + self.caster.dirs[idx[hit]] * dist[hit, None]
        return self.caster.object_ids(geom[hit]), points

    def _geoms_of(self, obj_id: int) -> np.ndarray:
        m, b = self.scene.model, self.scene.body_of[obj_id]
        return np.arange(m.body_geomadr[b], m.body_geomadr[b] + m.body_geomnum[b])

    def amodal(self, obj_id: int) -> np.ndarray:
        self._require_scene()
        if obj_id not in self.scene.body_of:
            raise KeyError(f"no object with id {obj_id} in the scene")
        intr = self.caster.intr
        return self.caster.amodal(list(self._geoms_of(obj_id))).reshape(intr.height, intr.width)

    def occlusion(self, obj_id: int, visible: dict[int, int] | None = None) -> float:
        """Occlusion rate of an object in the current state (scenario building; no frame needed).

        ``visible`` is ``visible_counts()`` when the caller already has it.
        """
        amodal = int(self.amodal(obj_id).sum())
        if amodal == 0:
            return 1.0
        shown = (self.visible_counts() if visible is None else visible).get(obj_id, 0)
        return max(0.0, 1.0 - shown / amodal)

    def object_states(self) -> list[ObjectState]:
        self._require_scene()
        held = self.rig.held_objects()
        out = []
        for o in self.scene.objects:
            pos, quat = self.scene.object_pos(o.id), self.scene.object_quat(o.id)
            in_bin = self.in_bin(o.id)
            is_held = o.id in held and pos[2] > self.recipe.workspace.table_z + 0.005
            out.append(ObjectState(o.id, o.kind, o.is_impurity, pos, quat,
                                   self._in_workspace(pos) and not in_bin and not is_held, in_bin, is_held))
        return out

    def _in_workspace(self, pos: np.ndarray) -> bool:
        table = self.recipe.workspace.table_z
        return (self.recipe.workspace.grid().contains(pos[0], pos[1])
                and table - OFF_TABLE_DROP < pos[2] < table + IN_WORKSPACE_TOP)

    def on_table(self, pos: np.ndarray) -> bool:
        """True for positions resting on the table top (anywhere on it), not in the bin or on the floor."""
        table = self.recipe.workspace.table_z
        return table - OFF_TABLE_DROP < pos[2] < table + IN_WORKSPACE_TOP and not self._bin_contains(pos)

    def in_bin(self, obj_id: int) -> bool:
        return self._bin_contains(self.scene.object_pos(obj_id))

    def _bin_contains(self, pos: np.ndarray) -> bool:
        b = self.recipe.reject_bin
        return (abs(pos[0] - b.position[0]) < b.size[0] / 2 and abs(pos[1] - b.position[1]) < b.size[1] / 2
                and b.position[2] - BIN_DEPTH - 0.01 < pos[2] < b.position[2])

    def highest_point_near(self, x: float, y: float, reach: float) -> float:
        """Top of the highest object whose bounding sphere comes within ``reach`` of (x, y)."""
        top = self.recipe.workspace.table_z
        for o in self.scene.objects:
            p = self.scene.object_pos(o.id)
            if np.hypot(p[0] - x, p[1] - y) < reach + o.radius:
                top = max(top, p[2] + o.radius)
        return top

    def gripper_in_view(self) -> bool:
        """True when any part of the gripper may show in the camera image."""
        geoms = np.array(sorted(self.scene.gripper_geoms))
        return len(self.caster.pixels_covering(geoms)) > 0


def _camera_pose(recipe: Recipe) -> Pose:
    if recipe.camera.pose is not None:
        return recipe.camera.pose.pose()
    cx, cy = recipe.workspace.grid().center
    z = recipe.workspace.table_z
    return Pose.look_at((cx, cy, z + FALLBACK_CAMERA_HEIGHT), (cx, cy, z))


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))
