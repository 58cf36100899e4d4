"""Density-based occluded-region inference (paper 2, section 5.1.2): DBSCAN on the heightmap's points.

The points are the cells higher than ``min_point_height`` above the table, as (x, y, height_scale * h)
in metres, so items touching at the same level join one cluster while a gap or a step in height splits
them. The largest cluster is where an impurity most likely hides; it can hide one only when it is at
least ``min_cluster_height`` high and ``min_cluster_area`` large (paper 2, Fig. 5).

For speed DBSCAN (scikit-learn) runs on every second cell in each direction (4 mm spacing, a quarter of
the points: a few ms instead of tens in dense scenes) with ``min_samples`` scaled by the same quarter,
so the density it asks for is the recipe's; labels are brought back to every object cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sorter.perception.heightmap import Heightmaps
from sorter.recipe import OcclusionSpec

STRIDE = 2  # cells between DBSCAN points in each direction


@dataclass(frozen=True)
class Cluster:
    """One DBSCAN cluster of object cells; ``center_rc`` in cells, ``center_xy`` in metres (base frame)."""

    mask: np.ndarray
    center_rc: tuple[float, float]
    center_xy: tuple[float, float]
    area_m2: float
    max_height: float
    volume_m3: float = 0.0

    def can_hide(self, spec: OcclusionSpec) -> bool:
        """High and large enough to hide an impurity (paper 2, Fig. 5)."""
        return self.max_height >= spec.min_cluster_height and self.area_m2 >= spec.min_cluster_area


def object_mask(heightmaps: Heightmaps, spec: OcclusionSpec) -> np.ndarray:
    """Cells holding an object: measured and higher than ``min_point_height`` above the table."""
    return heightmaps.valid & (heightmaps.height > spec.min_point_height)


def find_clusters(heightmaps: Heightmaps, spec: OcclusionSpec) -> list[Cluster]:
    """DBSCAN clusters of the object cells, largest area first; empty when nothing is on the table."""
    from sklearn.cluster import DBSCAN

    objects = object_mask(heightmaps, spec)
    sub = objects[::STRIDE, ::STRIDE]
    rows, cols = np.nonzero(sub)
    if rows.size == 0:
        return []
    grid = heightmaps.grid
    step = grid.cell_size * STRIDE
    heights = heightmaps.height[::STRIDE, ::STRIDE][rows, cols]
    points = np.stack([cols * step, rows * step, heights * spec.height_scale], axis=1)
    min_samples = max(1, math.ceil(spec.min_samples / STRIDE ** 2))
    labels = DBSCAN(eps=spec.eps, min_samples=min_samples).fit(points).labels_
    label_map = np.full(sub.shape, -1, np.int32)
    label_map[rows, cols] = labels
    full = _upsample_labels(label_map, objects)
    clusters = [_cluster(full == k, heightmaps) for k in range(int(labels.max()) + 1)]
    return sorted((c for c in clusters if c is not None), key=lambda c: -c.area_m2)


def _upsample_labels(label_map: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Labels of the strided cells spread to every object cell (nearest strided cell)."""
    n = objects.shape[0]
    up = cv2.resize(label_map, (label_map.shape[1] * STRIDE, label_map.shape[0] * STRIDE),
                    interpolation=cv2.INTER_NEAREST)[:n, :n]
    grown = cv2.dilate((up + 1).astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32) - 1
    up = np.where(up >= 0, up, grown)
    return np.where(objects, up, -1)


def _cluster(mask: np.ndarray, heightmaps: Heightmaps) -> Cluster | None:
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    grid = heightmaps.grid
    cell_area = grid.cell_size ** 2
    heights = heightmaps.height[rows, cols]
    center_rc = (float(rows.mean()), float(cols.mean()))
    x, y = grid.center_of(*center_rc)
    return Cluster(mask=mask, center_rc=center_rc, center_xy=(float(x), float(y)),
                   area_m2=float(rows.size * cell_area), max_height=float(heights.max()),
                   volume_m3=float(heights.sum() * cell_area))
