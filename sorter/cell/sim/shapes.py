"""Objects of the simulated cell: sampled from the recipe's item and impurity kinds.

Each object is drawn once (size within its bounding-box range, colour around the recipe mean, mass) and
then keeps its identity for the whole episode. ``mesh`` kinds get a random convex lump scaled to the
drawn bounding box, whose convex hull MuJoCo collides with: an angular one from a few points on a
jittered sphere (stones, clods) or a blocky one, a block with chipped corners (coal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sorter.recipe import ObjectSpec

MESH_POINTS = 12  # hull points of a lump: few enough for flat facets (rests on slopes up to ~25 deg)
MESH_JITTER = 0.35  # relative radial jitter of the lump's vertices
CHIP = (0.15, 0.6)  # a blocky lump's corner chips: share of each edge cut off at each corner


@dataclass(frozen=True)
class SimObject:
    """One physical object: what it is, its geometry and its look."""

    id: int
    kind: str
    is_impurity: bool
    shape: str
    extents: np.ndarray  # bounding-box extents (x, y, z) in metres, in the body frame
    color: np.ndarray  # mean RGB 0..255 of this object
    texture: float  # std of the surface texture, RGB levels
    mass: float
    friction: float
    mesh_vertices: np.ndarray | None = None  # (n, 3) body-frame vertices for shape "mesh"
    rolling_friction: float = 0.0  # m, see ObjectSpec.rolling_friction

    @property
    def radius(self) -> float:
        """Radius of the bounding sphere."""
        return float(np.linalg.norm(self.extents) / 2)

    @property
    def footprint(self) -> float:
        """Largest horizontal extent when lying on its broadest face."""
        return float(np.sort(self.extents)[-1])


def sample_object(spec: ObjectSpec, obj_id: int, is_impurity: bool, rng: np.random.Generator) -> SimObject:
    """Draw one object of kind ``spec``: size, colour, mass and (for meshes) its convex lump."""
    lo, hi = np.asarray(spec.size.min), np.asarray(spec.size.max)
    extents = lo + (hi - lo) * rng.random(3)
    extents = _shape_extents(spec.shape, extents)
    color = np.clip(np.asarray(spec.color.mean, float) + rng.normal(0.0, spec.color.spread, 3), 0, 255)
    mass = float(rng.uniform(*spec.mass))
    vertices = None
    if spec.shape == "mesh":
        vertices = blocky_lump(extents, rng) if spec.lump == "blocky" else convex_lump(extents, rng)
    return SimObject(obj_id, spec.name, is_impurity, spec.shape, extents, color, spec.color.texture, mass,
                     spec.friction, vertices, spec.rolling_friction)


def pick_spec(specs: list[ObjectSpec], rng: np.random.Generator) -> ObjectSpec:
    """One kind from a recipe group, by the kinds' relative weights."""
    weights = np.array([s.weight for s in specs], float)
    return specs[int(rng.choice(len(specs), p=weights / weights.sum()))]


def _shape_extents(shape: str, extents: np.ndarray) -> np.ndarray:
    """Make the drawn extents consistent with the shape (round shapes have one diameter)."""
    out = extents.copy()
    if shape in ("cylinder", "capsule"):
        out[0] = out[1] = (extents[0] + extents[1]) / 2
    if shape == "capsule":
        out[2] = max(out[2], out[0] * 1.05)
    return out


def geom_size(obj: SimObject) -> list[float]:
    """MuJoCo ``size`` of the object's geom from its bounding-box extents."""
    ex = obj.extents
    if obj.shape in ("box", "ellipsoid"):
        return [ex[0] / 2, ex[1] / 2, ex[2] / 2]
    if obj.shape == "cylinder":
        return [ex[0] / 2, ex[2] / 2, 0.0]
    if obj.shape == "capsule":
        r = ex[0] / 2
        return [r, ex[2] / 2 - r, 0.0]
    return [0.0, 0.0, 0.0]


def convex_lump(extents: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vertices of a random angular lump whose bounding box is exactly ``extents``.

    A few random points on a jittered sphere: their hull has large flat facets, so lumps rest on a face
    and pile up like stones and coal instead of rolling like marbles.
    """
    verts = rng.normal(size=(MESH_POINTS, 3))
    verts /= np.linalg.norm(verts, axis=1, keepdims=True)
    radial = 1.0 + MESH_JITTER * (rng.random(len(verts)) - 0.5) * 2
    verts = verts * radial[:, None]
    verts = verts @ _random_rotation(rng).T
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    verts = (verts - (lo + hi) / 2) / (hi - lo) * extents
    return verts


def blocky_lump(extents: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vertices of a block with chipped corners whose bounding box is exactly ``extents``.

    Each corner of the box is cut by a plane through three points on its edges, a random share
    (``CHIP``) of each edge from the corner: 24 points (fewer hull vertices where two chips of one edge
    overlap), broad flat faces that stack and butt against each other like split coal, uneven corners
    that tell lumps apart.
    """
    half = np.asarray(extents, float) / 2
    verts = []
    for signs in np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).T.reshape(-1, 3):
        corner = signs * half
        for axis in range(3):
            p = corner.copy()
            p[axis] -= signs[axis] * rng.uniform(*CHIP) * extents[axis]
            verts.append(p)
    return np.array(verts)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))
