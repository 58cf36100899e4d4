"""Benchmark scenes by name, and the feeder that drops new batches during continuous runs.

Paper 2's impurity suite: ``random`` (objects dropped from random poses), ``challenging`` (items laid
side by side in tight rows around the impurities), ``invisible`` (impurities inside or under heaps,
verified invisible from the camera; may add up to as many items again as the recipe counts when those
cannot hide them). Paper 1's occluded suite: ``15`` and ``30`` (objects dropped in settling waves
around a random spot) and ``30-hard`` (the most occluded object that still shows becomes the target).
``clean`` has no impurity. Counts come from ``recipe.sim.scenarios[name]``; every scene is a function
of its seed. Objects are placed physically: dropped or laid down and let settle, never interpenetrating.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sorter.cell.sim.scene import FLOOR_BELOW_TABLE, Placement
from sorter.cell.sim.shapes import SimObject, pick_spec
from sorter.errors import SorterError
from sorter.recipe import Counts, Recipe

if TYPE_CHECKING:
    from sorter.cell.sim.cell import SimCell

DROP_MARGIN = 0.09  # m kept free along the workspace border when dropping objects
WAVE = 6  # objects released together
CROWD_DROPS = 3  # crowds dropped at most, until none of the objects rolled off the table
WAVE_SETTLE = 0.6  # s of physics for a wave to come to rest before the next
CROWD_SPREAD = 0.2  # std of the occluded suite's drop around its spot, share of the drop region's side
DROP_GAP = 0.004  # m between bounding spheres of objects released together
ROW_GAP = (0.001, 0.004)  # m between neighbours in the challenging case's rows
ROW_JITTER = math.radians(4.0)
HEAP_TRIES = 6  # heaps laid (and settled) over an impurity until one hides it, before covering by hand
COVER_TRIES = 3  # placements tried per item when covering an impurity
COVER_OFFSETS = (0.0, 0.35, 0.15, 0.5)  # item footprints outward of the visible part, tried in turn
DECOY_SPACING = 0.16  # m between the centres of the heap hiding an impurity and the loose heap
RING_ITEMS = 8  # items lying around a hidden impurity, sides first, then corners
RING_MIN = 4  # ... and at least one per side, even when that leaves no item to cover by hand
COVER_RESERVE = 3  # items kept back from the ring for covering what a heap leaves showing
ROOF_ITEMS = 5  # items lying across it (the largest ones)
ROOF_GAP = 0.002  # m between roof items: one over the middle, the others edge to edge beside it
SPARE_BATCH = 4  # items added at a time when the recipe's items cannot hide an impurity
COVER_SETTLE = 0.5  # s of physics after each covering item
COVER_VIEW = 4.0  # bounding-sphere radii around a hidden impurity that its cover check looks at
PARKING_DISTANCE = 1.0  # m outside the workspace where objects wait to be placed
INVISIBLE_ATTEMPTS = 12
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
HARD_DROPS = 3  # crowds dropped at most, to find one whose target is at least HARD_MIN_OCCLUSION hidden
HARD_MIN_OCCLUSION = 0.3
HARD_SPREAD = 0.14  # a tighter crowd than the 15 and 30 cases: more objects on top of others
HARD_MIN_VISIBLE = 60  # pixels an object must show to count as the (occluded but findable) target


class SceneError(SorterError):
    """A scenario could not be built from this recipe."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    build: Callable[[SimCell, Counts, np.random.Generator], None]


def counts_for(recipe: Recipe, name: str) -> Counts:
    if name not in SCENARIOS:
        raise SceneError(f"unknown scenario '{name}'; choose one of: {', '.join(SCENARIOS)}")
    counts = recipe.sim.scenarios.get(name)
    if counts is None:
        raise SceneError(f"recipe '{recipe.product.name}' has no counts for scenario '{name}'; add "
                         f"sim.scenarios.\"{name}\": {{items: N, impurities: M}}")
    return counts


def drop_region(recipe: Recipe) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) where objects are released: the workspace less a border."""
    g = recipe.workspace.grid()
    return (g.x_min + DROP_MARGIN, g.y_min + DROP_MARGIN, g.x_max - DROP_MARGIN, g.y_max - DROP_MARGIN)


def random_quat(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def flat_pose(obj: SimObject, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Orientation lying on its broadest face, turned by ``yaw``; and its (dx, dy, height) there."""
    e = obj.extents
    axis = int(np.argmin(e))
    s = math.sqrt(0.5)
    tilt = {2: np.array([1.0, 0, 0, 0]), 0: np.array([s, 0, s, 0]), 1: np.array([s, s, 0, 0])}[axis]
    flat = {2: (e[0], e[1], e[2]), 0: (e[2], e[1], e[0]), 1: (e[0], e[2], e[1])}[axis]
    return quat_mul(yaw_quat(yaw), tilt), np.array(flat)


def stack_drops(objects: list[SimObject], xy: np.ndarray, base_z: float, quats: list[np.ndarray],
                occupied: list[tuple[np.ndarray, float]] | None = None) -> list[Placement]:
    """Release poses at ``xy``, each raised until its bounding sphere clears all earlier ones."""
    spheres = list(occupied or [])
    out = []
    for obj, (x, y), q in zip(objects, xy, quats, strict=True):
        r = obj.radius
        z = base_z + r
        for center, radius in sorted(spheres, key=lambda s: s[0][2]):
            if np.hypot(center[0] - x, center[1] - y) < r + radius + DROP_GAP:
                need = center[2] + math.sqrt(max((r + radius + DROP_GAP) ** 2 -
                                                 (center[0] - x) ** 2 - (center[1] - y) ** 2, 0.0))
                z = max(z, need)
        pos = np.array([x, y, z])
        spheres.append((pos, r))
        out.append(Placement(obj, pos, q))
    return out


def _uniform_xy(n: int, region: tuple[float, float, float, float], rng: np.random.Generator) -> np.ndarray:
    x0, y0, x1, y1 = region
    return np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)])


def build_random(cell: SimCell, counts: Counts, rng: np.random.Generator) -> None:
    """n impurities and m items dropped from random poses over the workspace, then settled."""
    objects = cell.make_objects(counts.items, counts.impurities, rng)
    order = [objects[i] for i in rng.permutation(len(objects))]
    xy = _uniform_xy(len(order), drop_region(cell.recipe), rng)
    quats = [random_quat(rng) for _ in order]
    cell.load(stack_drops(order, xy, cell.recipe.workspace.table_z + 0.005, quats))
    cell.settle()


def build_crowd(cell: SimCell, counts: Counts, rng: np.random.Generator) -> None:
    """Paper 1's cases: objects dropped around a random spot so that many lie on or against others;
    dropped again (a new crowd) when one rolled off the table."""
    for _ in range(CROWD_DROPS):
        cell.restart_ids()
        _drop_crowd(cell, cell.make_objects(counts.items, counts.impurities, rng), rng)
        if _all_on_table(cell):
            return
    raise SceneError(f"objects of '{cell.recipe.product.name}' rolled off the table in {CROWD_DROPS} "
                     "crowds for this seed; use another seed")


def _all_on_table(cell: SimCell) -> bool:
    return all(cell.on_table(cell.scene.object_pos(o.id)) for o in cell.scene.objects)


def _drop_crowd(cell: SimCell, objects: list[SimObject], rng: np.random.Generator,
                spread_share: float = CROWD_SPREAD) -> None:
    x0, y0, x1, y1 = drop_region(cell.recipe)
    spread = spread_share * min(x1 - x0, y1 - y0)
    centre = _uniform_xy(1, (x0 + spread, y0 + spread, x1 - spread, y1 - spread), rng)[0]
    order = [objects[i] for i in rng.permutation(len(objects))]
    xy = np.clip(centre + rng.normal(0, spread, (len(order), 2)), [x0, y0], [x1, y1])
    release_in_waves(cell, order, xy, rng)


def release_in_waves(cell: SimCell, objects: list[SimObject], xy: np.ndarray,
                     rng: np.random.Generator) -> None:
    """Drop objects a few at a time, each wave just above what already lies there, letting every wave
    settle: piles form as when a feeder tips small loads, instead of tall columns crashing down. The
    waves settle under ``rough_physics`` (a third of the physics steps); the finished crowd settles again
    under the cell's own physics, so what the builder checks next is the scene the primitives meet."""
    table = cell.recipe.workspace.table_z
    waves = [list(range(i, min(i + WAVE, len(objects)))) for i in range(0, len(objects), WAVE)]
    first = waves[0] if waves else []
    quats = [random_quat(rng) for _ in objects]
    placed = stack_drops([objects[i] for i in first], xy[first], table + 0.005, [quats[i] for i in first])
    with cell.rough_physics():
        cell.load(placed + _parked(cell, [objects[i] for w in waves[1:] for i in w]))
        cell.settle(WAVE_SETTLE)
        for wave in waves[1:]:
            occupied = [(p.pos, p.obj.radius) for p in cell.scene.placements() if cell.on_table(p.pos)]
            base = max([table] + [cell.highest_point_near(*xy[i], objects[i].radius) for i in wave])
            for p in stack_drops([objects[i] for i in wave], xy[wave], base + 0.005,
                                 [quats[i] for i in wave], occupied):
                cell.scene.set_object_pose(p.obj.id, p.pos, p.quat)
            cell.settle(WAVE_SETTLE)
        cell.settle()
    cell.settle()


def build_challenging(cell: SimCell, counts: Counts, rng: np.random.Generator) -> None:
    """Everything lying flat in tight rows, the impurities in the middle slots, surrounded by items."""
    objects = cell.make_objects(counts.items, counts.impurities, rng)
    cols = max(1, math.ceil(math.sqrt(len(objects))))
    rows = math.ceil(len(objects) / cols)
    slots = sorted(((r, c) for r in range(rows) for c in range(cols)),
                   key=lambda rc: (rc[0] - (rows - 1) / 2) ** 2 + (rc[1] - (cols - 1) / 2) ** 2)
    impurities = [o for o in objects if o.is_impurity]
    items = [objects[i] for i in rng.permutation(len(objects)) if not objects[i].is_impurity]
    laid = _grid(dict(zip(slots, impurities + items, strict=False)), rows, cols, rng)
    theta = rng.uniform(0, math.pi)
    cell.load(_lay(laid, theta, _random_spot(cell, laid, theta, rng), cell.recipe.workspace.table_z))
    cell.settle()


@dataclass(frozen=True)
class _Laid:
    """An object lying flat in a layout: local centre (x, y), height and local orientation."""

    obj: SimObject
    xy: np.ndarray
    height: float
    quat: np.ndarray


def _grid(by_slot: dict[tuple[int, int], SimObject], rows: int, cols: int, rng: np.random.Generator
          ) -> list[_Laid]:
    """Lay a grid out row by row with small gaps, centred on the origin."""
    laid: list[_Laid] = []
    y = 0.0
    for r in range(rows):
        row = [by_slot[(r, c)] for c in range(cols) if (r, c) in by_slot]
        poses = [(o, *flat_pose(o, ROW_JITTER * rng.uniform(-1, 1))) for o in row]
        depth = max((size[1] for _, _, size in poses), default=0.0)
        x = 0.0
        for o, q, size in poses:
            laid.append(_Laid(o, np.array([x + size[0] / 2, y + depth / 2]), float(size[2]), q))
            x += size[0] + rng.uniform(*ROW_GAP)
        y += depth + rng.uniform(*ROW_GAP)
    pts = np.array([item.xy for item in laid])
    mid = (pts.min(axis=0) + pts.max(axis=0)) / 2
    return [_Laid(item.obj, item.xy - mid, item.height, item.quat) for item in laid]


def _turn(xy: np.ndarray, theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.asarray(xy) @ np.array([[c, -s], [s, c]]).T


def _random_spot(cell: SimCell, laid: list[_Laid], theta: float, rng: np.random.Generator) -> np.ndarray:
    """A centre inside the drop region where the turned layout fits (the middle when it cannot)."""
    pts = _turn(np.array([item.xy for item in laid]), theta)
    x0, y0, x1, y1 = drop_region(cell.recipe)
    half = np.abs(pts).max(axis=0) + 0.03
    cx = rng.uniform(min(x0 + half[0], (x0 + x1) / 2), max(x1 - half[0], (x0 + x1) / 2))
    cy = rng.uniform(min(y0 + half[1], (y0 + y1) / 2), max(y1 - half[1], (y0 + y1) / 2))
    return np.array([cx, cy])


def _lay(laid: list[_Laid], theta: float, centre: np.ndarray, table: float) -> list[Placement]:
    pts = _turn(np.array([item.xy for item in laid]), theta) + centre
    return [Placement(item.obj, np.array([p[0], p[1], table + item.height / 2 + 0.001]),
                      quat_mul(yaw_quat(theta), item.quat)) for item, p in zip(laid, pts, strict=True)]


def build_invisible(cell: SimCell, counts: Counts, rng: np.random.Generator) -> None:
    """Impurities lying inside heaps: items around and on top (a heap is laid afresh, up to HEAP_TRIES
    times, until one hides them: cheap next to covering by hand), then items laid one by one wherever an
    impurity still shows. When the recipe's items cannot hide it, up to as many again are added (the
    scene then holds more items than the recipe's count). Verified on the visible masks; retried."""
    for _ in range(INVISIBLE_ATTEMPTS):
        cell.restart_ids()
        objects = cell.make_objects(counts.items, counts.impurities, rng)
        impurities = [o for o in objects if o.is_impurity]
        pool = sorted((o for o in objects if not o.is_impurity), key=_area)
        centres = _spread_points(len(impurities) + 1, drop_region(cell.recipe), DECOY_SPACING, rng)
        table = cell.recipe.workspace.table_z
        roles = []
        for imp in impurities:
            roof, pool = pool[-ROOF_ITEMS:][::-1], pool[:-ROOF_ITEMS]
            n_ring = min(RING_ITEMS, max(len(pool) - COVER_RESERVE, RING_MIN))
            ring, pool = pool[:n_ring], pool[n_ring:]
            roles.append((imp, ring, roof))
        targets = [o.id for o in impurities]
        for _ in range(HEAP_TRIES):
            placements = [p for (imp, ring, roof), c in zip(roles, centres, strict=False)
                          for p in _heap_over(imp, ring, roof, c, table, rng)]
            cell.load(placements + _parked(cell, pool))
            cell.settle()
            if _shown_count(cell, targets) == 0:
                break
        left = _cover(cell, targets, pool, rng)
        for p in _loose_heap(left, centres[-1], table, cell.scene.placements(), rng):
            cell.scene.set_object_pose(p.obj.id, p.pos, p.quat)
        cell.settle()
        unused = _top_up(cell, targets, counts.items, rng)
        if unused:
            cell.load([p for p in cell.scene.placements() if p.obj.id not in unused])
            cell.settle()
        visible = cell.visible_counts()
        if all(visible.get(t, 0) == 0 for t in targets):
            return
    raise SceneError(f"could not hide the impurities of '{cell.recipe.product.name}' under "
                     f"{2 * counts.items} items in {INVISIBLE_ATTEMPTS} attempts; "
                     "add items to sim.scenarios.invisible")


def _parked(cell: SimCell, objects: list[SimObject]) -> list[Placement]:
    return [Placement(o, _parking(cell, k, o), IDENTITY) for k, o in enumerate(objects)]


def _top_up(cell: SimCell, targets: list[int], most: int, rng: np.random.Generator) -> set[int]:
    """Add spare items while the targets still show (at most ``most``); returns the unused spares' ids."""
    added, unused = 0, set()
    while added < most and _shown_count(cell, targets) > 0:
        spares = cell.make_objects(min(SPARE_BATCH, most - added), 0, rng)
        added += len(spares)
        cell.load(cell.scene.placements() + _parked(cell, spares))
        cell.settle()
        unused |= {o.id for o in _cover(cell, targets, spares, rng)}
    return unused


def _area(obj: SimObject) -> float:
    """Footprint area lying flat: larger items make better roofs."""
    e = np.sort(obj.extents)
    return float(e[1] * e[2])


def _parking(cell: SimCell, k: int, obj: SimObject) -> np.ndarray:
    """A spot on the shop floor, far outside the camera's view, where an object waits to be placed."""
    g = cell.recipe.workspace.grid()
    floor = cell.recipe.workspace.table_z - FLOOR_BELOW_TABLE
    return np.array([g.x_min - PARKING_DISTANCE - 0.1 * k, g.y_min - PARKING_DISTANCE, floor + obj.radius])


def _heap_over(imp: SimObject, ring: list[SimObject], roof: list[SimObject], centre: np.ndarray,
               table: float, rng: np.random.Generator) -> list[Placement]:
    """The impurity in the middle of a 3x3 grid (edges filled before corners), a layer of items on top."""
    others = [(0, 1), (1, 0), (1, 2), (2, 1), (0, 0), (2, 2), (0, 2), (2, 0)]
    by_slot = {(1, 1): imp, **dict(zip(others, ring, strict=False))}
    laid = _grid(by_slot, 3, 3, rng)
    theta = rng.uniform(0, math.pi)
    middle = next(item.xy for item in laid if item.obj is imp)
    placements = _lay(laid, theta, centre - _turn(middle, theta), table)
    floor = table + max(item.height for item in laid) + 0.002
    if not roof:
        return placements
    q0, size0 = flat_pose(roof[0], theta + rng.normal(0, 0.1))
    placements.append(Placement(roof[0], np.array([centre[0], centre[1], floor + size0[2] / 2]), q0))
    sides = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    for (sx, sy), item in zip(sides, roof[1:], strict=False):
        q, size = flat_pose(item, theta + rng.normal(0, 0.1))
        step = (size0[:2] + size[:2]) / 2 + ROOF_GAP
        xy = centre + _turn(np.array([sx * step[0], sy * step[1]]), theta)
        placements.append(Placement(item, np.array([xy[0], xy[1], floor + size[2] / 2]), q))
    return placements


def _loose_heap(items: list[SimObject], centre: np.ndarray, table: float, existing: list[Placement],
                rng: np.random.Generator) -> list[Placement]:
    """Items released in a loose heap around ``centre``, clear of everything already placed."""
    if not items:
        return []
    xy = np.array([centre + rng.normal(0, 0.3 * o.footprint, 2) for o in items]).reshape(-1, 2)
    quats = [flat_pose(o, rng.uniform(0, math.pi))[0] for o in items]
    return stack_drops(items, xy, table + 0.002, quats, [(p.pos, p.obj.radius) for p in existing])


def _cover(cell: SimCell, targets: list[int], items: list[SimObject], rng: np.random.Generator
           ) -> list[SimObject]:
    """Lay parked items one at a time over the visible part of the targets until none shows.

    Each item is released just above the surface where it goes, turned across the way the visible part
    lies from the target's centre, on top of it or overlapping its outer edge. A placement that does
    not reduce what shows of the targets is undone (state restored) and the next item tried: greedy
    covering. Returns the items not needed (still parked).
    """
    left = list(items)
    shown = _shown(cell, targets)
    for attempt in range(COVER_TRIES * len(items)):
        if not left or shown[0] == 0:
            break
        snap = cell.scene.snapshot()
        item = left.pop(0)
        drop = _cover_drop(cell, shown, item, COVER_OFFSETS[attempt % len(COVER_OFFSETS)], rng)
        cell.scene.set_object_pose(item.id, drop.pos, drop.quat)
        cell.settle(COVER_SETTLE)
        if _shown_count(cell, targets) < shown[0]:
            shown = _shown(cell, targets)
        else:
            cell.scene.restore(snap)
            left.append(item)
    return left


def _shown(cell: SimCell, targets: list[int]) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(pixels of the targets, the most visible target, object id and world point of every hit)."""
    ids, points = cell.hit_points(targets, COVER_VIEW)
    counts = {t: int(np.count_nonzero(ids == t)) for t in targets}
    target = max(counts, key=counts.get)
    return sum(counts.values()), target, ids, points


def _shown_count(cell: SimCell, targets: list[int]) -> int:
    """Pixels of the targets, from only the rays that may hit them: what ``_shown`` counts, for a
    fraction of its rays (it also looks COVER_VIEW radii around them, for the next placement)."""
    ids, _ = cell.hit_points(targets)
    return int(np.isin(ids, targets).sum())


def _cover_drop(cell: SimCell, shown: tuple[int, int, np.ndarray, np.ndarray], item: SimObject,
                offset: float, rng: np.random.Generator) -> Placement:
    """Release pose of ``item`` over the most visible target: ``offset`` footprints outward of its
    visible part, long side across the outward direction, just above the surface there."""
    _, target, ids, points = shown
    shown_at = points[ids == target, :2].mean(axis=0)
    away = shown_at - cell.scene.object_pos(target)[:2]
    away = away / max(float(np.linalg.norm(away)), 1e-6)
    aim = shown_at + away * offset * item.footprint + rng.normal(0, 0.05 * item.footprint, 2)
    yaw = math.atan2(away[1], away[0]) + math.pi / 2 + rng.normal(0, 0.15)
    q, size = flat_pose(item, yaw)
    if size[1] > size[0]:
        q, size = flat_pose(item, yaw + math.pi / 2)
    near = np.hypot(points[:, 0] - aim[0], points[:, 1] - aim[1]) < float(np.hypot(size[0], size[1])) / 2
    top = max(cell.recipe.workspace.table_z, float(points[near, 2].max()) if near.any() else -np.inf)
    return Placement(item, np.array([aim[0], aim[1], top + size[2] / 2 + 0.003]), q)


def _spread_points(n: int, region: tuple[float, float, float, float], spacing: float,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` points in ``region`` at least ``spacing`` apart where possible (dart throwing)."""
    points: list[np.ndarray] = []
    for _ in range(n):
        best, best_gap = None, -1.0
        for _ in range(30):
            p = _uniform_xy(1, region, rng)[0]
            gap = min((float(np.linalg.norm(p - q)) for q in points), default=np.inf)
            if gap >= spacing:
                best = p
                break
            if gap > best_gap:
                best, best_gap = p, gap
        points.append(best)
    return points


def build_hard(cell: SimCell, counts: Counts, rng: np.random.Generator) -> None:
    """Paper 1's hard case: all objects dropped as items, then the most occluded one that still shows
    (HARD_MIN_VISIBLE pixels) is made the target: it takes the look of an impurity kind (colour and
    texture; its shape stays that of the item it was). Crowds are dropped again (up to HARD_DROPS) until
    that target is at least HARD_MIN_OCCLUSION hidden; the most occluded crowd is kept (one that lost an
    object over the table's edge never is)."""
    best: tuple[float, list[Placement], list[int]] | None = None
    for _ in range(HARD_DROPS):
        cell.restart_ids()
        objects = cell.make_objects(counts.items + counts.impurities, 0, rng)
        _drop_crowd(cell, objects, rng, HARD_SPREAD)
        if not _all_on_table(cell):
            continue
        visible = cell.visible_counts()
        rates = {i: cell.occlusion(i, visible) for i, n in visible.items() if n >= HARD_MIN_VISIBLE}
        ranked = sorted(rates, key=lambda i: (-rates[i], i))[:counts.impurities]
        if len(ranked) < counts.impurities:
            continue
        score = min(rates[i] for i in ranked)
        if best is None or score > best[0]:
            best = (score, cell.scene.placements(), ranked)
        if score >= HARD_MIN_OCCLUSION:
            break
    if best is None:
        raise SceneError(f"no usable '30-hard' crowd of '{cell.recipe.product.name}' for this seed (too few "
                         "objects show, or one rolled off the table); use another seed")
    cell.load(best[1])
    for oid in best[2]:
        cell.mark_impurity(oid, pick_spec(cell.recipe.sim.impurities, rng), rng)


def build_feeder_batch(cell: SimCell, rng: np.random.Generator) -> None:
    """Drop a new batch (counts drawn from recipe.sim.feeder) from drop_height onto the current table.

    What lies in the workspace stays; what is in the bin, on the floor or on the table outside the
    workspace is cleared away first (the bin emptied, strays swept off).
    """
    feeder = cell.recipe.sim.feeder
    n_items = int(rng.integers(feeder.items[0], feeder.items[1] + 1))
    n_imp = int(rng.integers(feeder.impurities[0], feeder.impurities[1] + 1))
    keep = cell.scene.placements() if cell.scene is not None else []
    keep = [p for p in keep if cell.on_table(p.pos) and cell.recipe.workspace.grid().contains(*p.pos[:2])]
    objects = cell.make_objects(n_items, n_imp, rng)
    occupied = [(p.pos, p.obj.radius) for p in keep]
    xy = _uniform_xy(len(objects), drop_region(cell.recipe), rng)
    quats = [random_quat(rng) for _ in objects]
    base = cell.recipe.workspace.table_z + feeder.drop_height
    cell.load(keep + stack_drops(objects, xy, base, quats, occupied))
    cell.settle()


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("random", "impurities and items dropped from random poses", build_random),
    Scenario("challenging", "items side by side in tight rows around the impurities", build_challenging),
    Scenario("invisible", "impurities hidden inside or under heaps (verified invisible)", build_invisible),
    Scenario("15", "15 objects dropped around a random spot, one impurity", build_crowd),
    Scenario("30", "30 objects dropped around a random spot, one impurity", build_crowd),
    Scenario("30-hard", "30 objects, the impurity is the most occluded findable object", build_hard),
    Scenario("clean", "items only, no impurity", build_random),
)}
