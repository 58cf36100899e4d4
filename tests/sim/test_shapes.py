"""Object geometry: mesh lumps fit their drawn bounding box and have the build their kind asks for."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from sorter.cell.sim.shapes import blocky_lump, convex_lump

EXTENTS = np.array([0.040, 0.032, 0.024])


def _fill(vertices: np.ndarray) -> float:
    """Hull volume over bounding-box volume."""
    return ConvexHull(vertices).volume / float(np.prod(np.ptp(vertices, axis=0)))


@pytest.mark.parametrize("make", [convex_lump, blocky_lump])
def test_lumps_span_exactly_the_drawn_extents(make):
    rng = np.random.default_rng(5)
    for _ in range(20):
        v = make(EXTENTS, rng)
        np.testing.assert_allclose(np.ptp(v, axis=0), EXTENTS, atol=1e-12)
        np.testing.assert_allclose((v.min(axis=0) + v.max(axis=0)) / 2, 0.0, atol=1e-12)


def test_blocky_lumps_fill_their_box_where_angular_ones_leave_gaps():
    """Blocky pieces butt against each other; angular lumps laid box to box leave gaps between them."""
    rng = np.random.default_rng(6)
    blocky = [_fill(blocky_lump(EXTENTS, rng)) for _ in range(50)]
    angular = [_fill(convex_lump(EXTENTS, rng)) for _ in range(50)]
    assert min(blocky) > 0.8
    assert max(blocky) < 0.99  # chipped, not boxes
    assert np.mean(angular) < 0.5


def test_blocky_lumps_differ_from_each_other():
    rng = np.random.default_rng(7)
    a, b = blocky_lump(EXTENTS, rng), blocky_lump(EXTENTS, rng)
    assert not np.allclose(a, b)
