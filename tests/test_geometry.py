"""Pixel/metre conversions: the one source of truth must round-trip and agree with itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sorter.geometry import D435_COLOR_640x480, Pose, WorkspaceGrid, rotation_angle, rpy_to_matrix, wrap_angle


def test_cell_centres_round_trip() -> None:
    grid = WorkspaceGrid(0.3, -0.224)
    rows, cols = np.meshgrid(np.arange(224), np.arange(224), indexing="ij")
    x, y = grid.center_of(rows, cols)
    r2, c2 = grid.cell_of(x, y)
    assert np.array_equal(r2, rows) and np.array_equal(c2, cols)
    assert grid.x_max == pytest.approx(0.748) and grid.center == pytest.approx((0.524, 0.0))
    assert grid.contains(0.31, 0.0) and not grid.contains(0.31, 0.0, margin=0.02)


def test_look_at_points_optical_axis_at_target() -> None:
    pose = Pose.look_at((0.5, 0.06, 0.7), (0.5, 0.0, 0.0))
    axis = pose.rotation[:, 2]
    to_target = np.array([0.0, -0.06, -0.7]) / np.linalg.norm([0.0, -0.06, -0.7])
    assert np.allclose(axis, to_target)
    assert np.allclose(pose.rotation.T @ pose.rotation, np.eye(3))
    assert np.linalg.det(pose.rotation) == pytest.approx(1.0)


def test_project_deproject_round_trip_through_a_pose() -> None:
    k = D435_COLOR_640x480
    depth = np.full((480, 640), 0.7, np.float32)
    pts = k.deproject(depth)
    uv = k.project(pts.reshape(-1, 3)).reshape(480, 640, 2)
    assert np.allclose(uv[10, 20], (20, 10), atol=1e-4)
    pose = Pose.look_at((0.5, 0.0, 0.7), (0.5, 0.0, 0.0))
    world = pose.apply(pts[240, 320])
    assert np.allclose(world, (0.5, 0.0, 0.0), atol=2e-3)
    assert np.allclose(pose.inverse().apply(world), pts[240, 320], atol=1e-9)


def test_deproject_rejects_wrong_size() -> None:
    with pytest.raises(ValueError, match="640x480"):
        D435_COLOR_640x480.deproject(np.zeros((10, 10), np.float32))


def test_pose_rejects_non_finite() -> None:
    m = np.eye(4)
    m[0, 3] = math.nan
    with pytest.raises(ValueError):
        Pose(m)


def test_angles() -> None:
    assert rotation_angle(4) == pytest.approx(math.pi / 2)
    assert rotation_angle(20) == pytest.approx(rotation_angle(4))
    assert wrap_angle(3 * math.pi) == pytest.approx(-math.pi)
    r = rpy_to_matrix(0.1, -0.2, 0.3)
    assert np.allclose(r @ r.T, np.eye(3))
