"""The simulated RGB-D camera: a ray-cast pinhole (``mujoco.mj_multiRay``) with D435-like behaviour.

Static scenery (table, bin, floor) is cast once per cell; each frame casts again only the pixels inside
the projected bounding boxes of the moving geoms (objects, gripper) that moved since the last frame,
which gives exactly the same hits as casting every pixel against everything (a test checks it), at a
fraction of the cost. Large casts are split between two threads (the binding releases the GIL in
``mj_multiRay``): every other ray to a helper thread casting into its own ``MjData`` holding the same
geom poses, so the hits are exactly those of one cast (a test checks it) in a little over half the time.
Colour is Lambert shading of a surface texture fixed to each object (so it moves with the object),
plus sensor noise; depth is the z distance along the optical axis with noise growing with distance
squared, missing pixels at depth edges and the sensor's 1 mm depth unit.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from sorter.cell.base import Camera, CameraDisconnected, CameraTimeout, RGBDFrame
from sorter.cell.sim.scene import GROUP_GRIPPER, GROUP_OBJECT, GROUP_PROBE, GROUP_STATIC, SceneModel
from sorter.geometry import D435_COLOR_640x480, Intrinsics, Pose
from sorter.recipe import Recipe

if TYPE_CHECKING:
    from sorter.cell.sim.cell import SimCell

POSE_EPS = 1e-7  # m (and rotation-matrix units) a geom must move to be cast again
MAX_RANGE = 3.0  # m, beyond this no depth (D435 ideal range ends near 3 m)
DEPTH_UNIT = 0.001  # m per depth count (D435 default depth scale)
EDGE_JUMP = 0.006  # m between neighbouring pixels that makes a depth edge
AMBIENT = 0.45  # share of light that does not depend on the surface's orientation
SENSOR_NOISE = 2  # per-pixel colour sensor noise, uniform in +-levels (std 1.4 levels)
TABLE_TEXTURE = 4.0  # std of the table's surface texture, RGB levels
TEXTURE_CELLS = (0.002, 0.006)  # m, fine and coarse texture grain
TEXTURE_WEIGHTS = (0.6, 0.8)
RAY_THREADS = min(2, os.cpu_count() or 1)  # threads sharing a large cast
PARALLEL_RAYS = 4096  # rays below which one thread casts (handing half over costs more than it saves)


def intrinsics_for(recipe: Recipe) -> Intrinsics:
    """D435 colour intrinsics at the recipe's resolution (focal length scales with width)."""
    w, h = recipe.camera.width, recipe.camera.height
    if (w, h) == (D435_COLOR_640x480.width, D435_COLOR_640x480.height):
        return D435_COLOR_640x480
    f = D435_COLOR_640x480.fx * w / D435_COLOR_640x480.width
    return Intrinsics(w, h, f, f, (w - 1) / 2, (h - 1) / 2)


def _groups(*groups: int) -> np.ndarray:
    mask = np.zeros(6, np.uint8)
    mask[list(groups)] = 1
    return mask


class Background:
    """What the camera sees of the static scenery; identical for every scene of one cell, so cached."""

    def __init__(self, scene: SceneModel, pose: Pose, intrinsics: Intrinsics, recipe: Recipe):
        self.origin = np.ascontiguousarray(pose.translation, dtype=np.float64)
        cam_dirs = intrinsics.ray_directions()
        self.dirs = np.ascontiguousarray(cam_dirs @ pose.rotation.T)
        self.z_factor = cam_dirs[:, 2].astype(np.float32)
        light = -np.asarray(recipe.sim.camera_noise.light_direction, float)
        self.light = (light / np.linalg.norm(light)).astype(np.float32)
        self.static_geoms = np.array(sorted(scene.static_geoms))
        n = len(self.dirs)
        self.geom, self.dist, normal = _cast(scene, self.origin, self.dirs, np.arange(n),
                                             _groups(GROUP_STATIC), True)
        self.normal = normal.astype(np.float32)
        albedo, _ = _surface_tables(scene)
        hit = np.flatnonzero(self.geom >= 0)
        points = self.origin + self.dirs[hit] * self.dist[hit, None]
        tex = _texture(points, self.geom[hit].astype(np.uint32)) * TABLE_TEXTURE
        self.color = np.zeros((n, 3), np.float32)
        self.color[hit] = lit(albedo[self.geom[hit]] + tex[:, None], self.normal[hit], self.light)

    def matches(self, scene: SceneModel) -> bool:
        return np.array_equal(self.static_geoms, np.array(sorted(scene.static_geoms)))


def _cast(scene: SceneModel, origin: np.ndarray, dirs: np.ndarray, idx: np.ndarray, groups: np.ndarray,
          with_static: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geom ids (-1 none), distances (-1 none) and normals of the rays ``dirs[idx]``."""
    k = len(idx)
    if k < PARALLEL_RAYS or RAY_THREADS < 2:
        return _cast_part(scene.model, scene.data, origin, dirs, idx, groups, with_static)
    helper = _helper_pool().submit(_cast_part, scene.model, scene.ray_data(), origin, dirs, idx[1::2],
                                   groups, with_static)
    mine = _cast_part(scene.model, scene.data, origin, dirs, idx[0::2], groups, with_static)
    theirs = helper.result()
    geom, dist, normal = np.empty(k, np.int32), np.empty(k), np.empty((k, 3))
    for part, out in zip((mine, theirs), (slice(0, k, 2), slice(1, k, 2)), strict=True):
        geom[out], dist[out], normal[out] = part
    return geom, dist, normal


def _cast_part(model: mujoco.MjModel, data: mujoco.MjData, origin: np.ndarray, dirs: np.ndarray,
               idx: np.ndarray, groups: np.ndarray, with_static: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One thread's ``mj_multiRay`` over ``dirs[idx]``; ``data`` is used as scratch by MuJoCo, so two
    threads never share one."""
    k = len(idx)
    geom = np.full(k, -1, np.int32)
    dist = np.full(k, -1.0)
    normal = np.zeros(3 * k)
    if k:
        vec = np.ascontiguousarray(dirs[idx]).ravel()
        mujoco.mj_multiRay(model, data, origin, vec, groups, 1 if with_static else 0, -1,
                           geom, dist, normal, k, MAX_RANGE)
    return geom, dist, normal.reshape(k, 3)


@functools.cache
def _helper_pool() -> ThreadPoolExecutor:
    """The one helper thread of large casts (the calling thread casts the other half)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="raycast")


# a forked child has no helper thread, only the parent's record of one: it starts its own
os.register_at_fork(after_in_child=_helper_pool.cache_clear)


def lit(albedo: np.ndarray, normal: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Lambert shading with an ambient share."""
    lambert = np.clip(normal @ light, 0.0, 1.0)
    return (albedo * (AMBIENT + (1.0 - AMBIENT) * lambert)[:, None]).astype(np.float32)


class RayCaster:
    """Casts the camera's pixel rays into one compiled scene over the cached static background."""

    def __init__(self, scene: SceneModel, pose: Pose, intrinsics: Intrinsics, background: Background):
        self.scene = scene
        self.intr = intrinsics
        self.pose = pose
        self.bg = background
        self.origin, self.dirs, self.z_factor = background.origin, background.dirs, background.z_factor
        self.n = len(self.dirs)
        self._albedo, self._texture = _surface_tables(scene)
        self._object_lut = np.append(scene.geom_object, 0).astype(np.int32)
        self._movers = np.array(sorted(scene.gripper_geoms) + list(np.flatnonzero(scene.geom_object)),
                                dtype=np.int64)
        self._last: tuple | None = None

    def object_ids(self, geom: np.ndarray) -> np.ndarray:
        """Object id per hit (0 for scenery, gripper or no hit)."""
        return self._object_lut[geom]

    def cast(self, idx: np.ndarray, groups: np.ndarray, with_static: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _cast(self.scene, self.origin, self.dirs, idx, groups, with_static)

    def pixels_covering(self, geoms: np.ndarray, inflate: float = 1.0,
                        poses: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Indices of pixels whose rays may hit any of ``geoms`` (their boxes scaled by ``inflate``),
        at the current poses or at ``poses`` (geom positions, rotation matrices)."""
        h, w = self.intr.height, self.intr.width
        mask = np.zeros((h, w), bool)
        for u0, v0, u1, v1 in self._rectangles(geoms, inflate, poses):
            mask[v0:v1, u0:u1] = True
        return np.flatnonzero(mask.ravel())

    def _rectangles(self, geoms: np.ndarray, inflate: float,
                    poses: tuple[np.ndarray, np.ndarray] | None) -> list[tuple[int, int, int, int]]:
        """Image rectangles bounding the projected bounding boxes of ``geoms``."""
        if len(geoms) == 0:
            return []
        m, intr = self.scene.model, self.intr
        pos, mat = poses if poses is not None else self.geom_poses(geoms)
        box = m.geom_aabb[geoms]
        local = box[:, None, :3] + box[:, None, 3:] * inflate * _CUBE[None, :, :]
        world = pos[:, None, :] + np.einsum("gij,gkj->gki", mat, local)
        corners = (world - self.origin) @ self.pose.rotation
        z = corners[..., 2]
        ahead = np.all(z > 1e-3, axis=1)
        zs = np.where(ahead[:, None], z, 1.0)
        u = corners[..., 0] / zs * intr.fx + intr.cx
        v = corners[..., 1] / zs * intr.fy + intr.cy
        out = []
        for i in range(len(geoms)):
            if not ahead[i]:
                if np.any(z[i] > 0):
                    out.append((0, 0, intr.width, intr.height))
                continue
            u0, u1 = max(int(u[i].min()) - 1, 0), min(int(u[i].max()) + 2, intr.width)
            v0, v1 = max(int(v[i].min()) - 1, 0), min(int(v[i].max()) + 2, intr.height)
            if u0 < u1 and v0 < v1:
                out.append((u0, v0, u1, v1))
        return out

    def geom_poses(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.scene.data
        return d.geom_xpos[geoms].copy(), d.geom_xmat[geoms].reshape(-1, 3, 3).copy()

    def hits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noise-free geom id, distance and normal for every pixel of the current state.

        Only the pixels where a moving geom was or is since the previous call are cast again: the rays
        elsewhere meet exactly what they met before.
        """
        poses = self.geom_poses(self._movers)
        if self._last is None:
            geom, dist, normal = self.bg.geom.copy(), self.bg.dist.copy(), self.bg.normal.copy()
            idx = self.pixels_covering(self._movers, poses=poses)
        else:
            geom, dist, normal, before = self._last
            moved = np.flatnonzero(np.any(np.abs(poses[0] - before[0]) > POSE_EPS, axis=1)
                                   | np.any(np.abs(poses[1] - before[1]) > POSE_EPS, axis=(1, 2)))
            geom, dist, normal = geom.copy(), dist.copy(), normal.copy()
            old = self.pixels_covering(self._movers[moved], poses=(before[0][moved], before[1][moved]))
            new = self.pixels_covering(self._movers[moved], poses=(poses[0][moved], poses[1][moved]))
            idx = np.union1d(old, new)
            geom[idx], dist[idx], normal[idx] = self.bg.geom[idx], self.bg.dist[idx], self.bg.normal[idx]
        g, dd, nn = self.cast(idx, _groups(GROUP_GRIPPER, GROUP_OBJECT), False)
        closer = (dd >= 0) & ((dist[idx] < 0) | (dd < dist[idx]))
        sel = idx[closer]
        geom[sel], dist[sel], normal[sel] = g[closer], dd[closer], nn[closer]
        self._last = (geom, dist, normal, poses)
        return geom.copy(), dist.copy(), normal.copy()

    def hits_at(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free geom id and distance of the pixels ``idx`` only."""
        geom, dist = self.bg.geom[idx].copy(), self.bg.dist[idx].copy()
        g, dd, _ = self.cast(idx, _groups(GROUP_GRIPPER, GROUP_OBJECT), False)
        closer = (dd >= 0) & ((dist < 0) | (dd < dist))
        geom[closer], dist[closer] = g[closer], dd[closer]
        return geom, dist

    def amodal(self, geoms: list[int]) -> np.ndarray:
        """Flat pixel mask of rays that hit ``geoms`` when nothing else exists."""
        m = self.scene.model
        saved = m.geom_group[geoms].copy()
        m.geom_group[geoms] = GROUP_PROBE
        try:
            idx = self.pixels_covering(np.asarray(geoms))
            g, _, _ = self.cast(idx, _groups(GROUP_PROBE), False)
        finally:
            m.geom_group[geoms] = saved
        out = np.zeros(self.n, bool)
        out[idx[g >= 0]] = True
        return out

    def shade(self, geom: np.ndarray, dist: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """Float32 RGB (N, 3): static colours cached, objects and gripper textured in their own frame."""
        color = self.bg.color.copy()
        moving = np.flatnonzero(geom > self.bg.static_geoms.max())
        if len(moving):
            g = geom[moving]
            points = self.origin + self.dirs[moving] * dist[moving, None]
            body = self.scene.model.geom_bodyid[g]
            local = np.einsum("ni,nij->nj", points - self.scene.data.xpos[body],
                              self.scene.data.xmat[body].reshape(-1, 3, 3))
            tex = _texture(local, g.astype(np.uint32)) * self._texture[g]
            color[moving] = lit(self._albedo[g] + tex[:, None], normal[moving], self.bg.light)
        return color


_CUBE = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)


def _surface_tables(scene: SceneModel) -> tuple[np.ndarray, np.ndarray]:
    """Per-geom albedo (RGB 0..255) and texture strength."""
    m = scene.model
    albedo = m.geom_rgba[:, :3].astype(np.float64) * 255.0
    texture = np.zeros(m.ngeom)
    by_id = {o.id: o for o in scene.objects}
    for g in np.flatnonzero(scene.geom_object):
        texture[g] = by_id[int(scene.geom_object[g])].texture
    return albedo, texture


def _texture(points: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Value noise with unit-ish std fixed to ``points`` (metres), different for every ``salt``."""
    total = np.zeros(len(points))
    for cell, weight in zip(TEXTURE_CELLS, TEXTURE_WEIGHTS, strict=True):
        q = np.floor(points / cell).astype(np.int64).astype(np.uint32)
        h = (q[:, 0] * np.uint32(73856093)) ^ (q[:, 1] * np.uint32(19349663)) ^ \
            (q[:, 2] * np.uint32(83492791)) ^ (salt * np.uint32(2654435761))
        h ^= h >> np.uint32(13)
        h *= np.uint32(0x5BD1E995)
        h ^= h >> np.uint32(15)
        total += weight * ((h & np.uint32(0xFFFF)).astype(np.float64) / 32767.5 - 1.0)
    return total * (3.0 ** 0.5) / float(np.hypot(*TEXTURE_WEIGHTS))


class SimCamera(Camera):
    """Implements ``sorter.cell.base.Camera`` on the simulated cell; connected from the start."""

    def __init__(self, cell: SimCell):
        self._cell = cell
        self._connected = True
        self._intrinsics = intrinsics_for(cell.recipe)
        self._sequence = 0
        self._last: RGBDFrame | None = None
        self._last_version = -1

    @property
    def intrinsics(self) -> Intrinsics:
        return self._intrinsics

    def restart(self) -> None:
        """Forget past frames; a new scene starts its frame sequence at 1."""
        self._sequence = 0
        self._last = None
        self._last_version = -1

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def read(self, timeout: float = 1.0) -> RGBDFrame:
        """The next frame: the cell's clock moves on by one frame period, then the scene is rendered."""
        self._check()
        self._cell.advance(1.0 / self._cell.recipe.camera.fps)
        return self._render()

    def read_latest(self, max_age: float = 0.5) -> RGBDFrame:
        """The newest frame; re-rendered when the scene changed or the last one is too old."""
        self._check()
        last = self._last
        if last is not None and self._last_version == self._cell.version \
                and self._cell.time - last.timestamp <= max_age:
            return last
        return self._render()

    def _check(self) -> None:
        if not self._connected:
            raise CameraDisconnected("the simulated camera is disconnected; call connect() first")
        faults = self._cell.faults
        if faults.camera_dropouts > 0:
            faults.camera_dropouts -= 1
            raise CameraTimeout("no frame from the simulated camera (injected dropout); retry the read")

    def _render(self) -> RGBDFrame:
        cell = self._cell
        self._sequence += 1
        color, depth = cell.render_frame(self._sequence)
        frame = RGBDFrame(color, depth, self._intrinsics, cell.time, self._sequence)
        self._last, self._last_version = frame, cell.version
        return frame


def finish_frame(caster: RayCaster, geom: np.ndarray, dist: np.ndarray, normal: np.ndarray,
                 noise: tuple[float, float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Colour (uint8 HxWx3) and depth (float32 HxW, 0 invalid) with the sensor's noise and dropouts."""
    h, w = caster.intr.height, caster.intr.width
    depth_std_1m, edge_dropout = noise
    color = caster.shade(geom, dist, normal).reshape(h, w, 3)
    color += rng.integers(-SENSOR_NOISE, SENSOR_NOISE + 1, (h, w, 3), dtype=np.int8)
    color += np.float32(0.5)
    np.clip(color, 0, 255, out=color)
    z = (np.maximum(dist, 0.0).astype(np.float32) * caster.z_factor).reshape(h, w)
    noisy = z + rng.standard_normal((h, w), dtype=np.float32) * (np.float32(depth_std_1m) * z * z)
    depth = np.round(noisy * np.float32(1.0 / DEPTH_UNIT)) * np.float32(DEPTH_UNIT)
    depth[z <= 0] = 0.0
    edges = np.flatnonzero(_depth_edges(z))
    lost = edges[rng.random(len(edges)) < edge_dropout]
    depth.ravel()[lost] = 0.0
    return color.astype(np.uint8), depth


def _depth_edges(z: np.ndarray) -> np.ndarray:
    """Pixels next to a depth jump larger than EDGE_JUMP (or next to a missing reading)."""
    edges = np.zeros(z.shape, bool)
    jump_x = np.abs(z[:, 1:] - z[:, :-1]) > EDGE_JUMP
    jump_y = np.abs(z[1:, :] - z[:-1, :]) > EDGE_JUMP
    edges[:, 1:] |= jump_x
    edges[:, :-1] |= jump_x
    edges[1:, :] |= jump_y
    edges[:-1, :] |= jump_y
    return edges
