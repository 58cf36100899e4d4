"""Heightmap geometry against analytic frames with known points, hole filling and bad input."""

import numpy as np
import pytest

from sorter.cell.base import RGBDFrame
from sorter.geometry import D435_COLOR_640x480, Intrinsics, Pose
from sorter.perception.heightmap import (
    PerceptionError,
    compute_heightmaps,
    pixels_to_cells,
    project_cells,
    sample_image,
)
from tests.perception.synthetic import GRID, TABLE_RGB, Box, render, top_down_pose

BOXES = [Box(0.40, 0.44, -0.05, -0.01, 0.03, (200, 30, 30)),
         Box(0.60, 0.65, 0.10, 0.14, 0.05, (30, 200, 30))]
TILTED = Pose.look_at((0.50, -0.08, 0.70), (0.524, 0.0, 0.0))


def _cells_in(box: Box, shrink: float = 0.002):
    r0, c0 = GRID.cell_of(box.x0 + shrink, box.y0 + shrink)
    r1, c1 = GRID.cell_of(box.x1 - shrink, box.y1 - shrink)
    return slice(int(r0), int(r1) + 1), slice(int(c0), int(c1) + 1)


@pytest.mark.parametrize("pose", [top_down_pose(), TILTED], ids=["top-down", "tilted"])
def test_box_tops_land_in_their_cells_at_their_height(pose):
    hm = compute_heightmaps(render(BOXES, pose), pose, GRID)
    assert hm.height.shape == (GRID.cells, GRID.cells) and hm.color.dtype == np.uint8
    for box in BOXES:
        rows, cols = _cells_in(box)
        assert np.allclose(hm.height[rows, cols], box.top, atol=1e-4)
        assert np.all(hm.color[rows, cols] == box.rgb)
    high = hm.height > 0.01
    x, y = GRID.center_of(*np.nonzero(high))
    inside_any = np.zeros(x.shape, bool)
    for b in BOXES:
        inside_any |= (x > b.x0 - 0.005) & (x < b.x1 + 0.005) & (y > b.y0 - 0.005) & (y < b.y1 + 0.005)
    assert inside_any.all(), "height found outside every box footprint"
    table = ~high & hm.valid
    assert np.allclose(hm.height[table], 0.0, atol=1e-5)
    measured_table = table & (hm.pixel >= 0)
    assert np.all(hm.color[measured_table] == TABLE_RGB)


def test_highest_point_wins_when_a_cell_sees_two_heights():
    pose = top_down_pose()
    low = Box(0.45, 0.55, -0.05, 0.05, 0.02, (10, 10, 10))
    high = Box(0.48, 0.52, -0.02, 0.02, 0.06, (250, 250, 250))
    hm = compute_heightmaps(render([low, high], pose), pose, GRID)
    rows, cols = _cells_in(high)
    assert np.allclose(hm.height[rows, cols], 0.06, atol=1e-4)
    assert np.all(hm.color[rows, cols] == 250)


def test_pinholes_are_filled_and_large_gaps_stay_invalid():
    pose = top_down_pose()
    frame = render([], pose)
    depth = frame.depth.copy()
    depth[::7, ::5] = 0.0
    depth[200:280, 250:330] = 0.0
    hm = compute_heightmaps(RGBDFrame(frame.color, depth, frame.intrinsics, 0.0, 0), pose, GRID)
    r, c = GRID.cell_of(*GRID.center)
    assert not hm.valid[r, c], "a 4 cm gap is not a tiny hole"
    assert hm.valid.mean() > 0.9
    assert np.allclose(hm.height, 0.0, atol=1e-5)


def test_pixel_map_round_trips_through_projection():
    pose = TILTED
    frame = render(BOXES, pose)
    hm = compute_heightmaps(frame, pose, GRID)
    rows, cols = np.nonzero(hm.pixel >= 0)
    v, u = np.divmod(hm.pixel[rows, cols], frame.intrinsics.width)
    r2, c2 = pixels_to_cells(u, v, frame.depth[v, u], frame.intrinsics, pose, GRID)
    same = (r2 == rows) & (c2 == cols)
    assert same.mean() > 0.995, "float32 rounding may move a point on a cell border, nothing more"
    assert np.abs(r2 - rows).max() <= 1 and np.abs(c2 - cols).max() <= 1
    pu, pv = project_cells(GRID, pose, frame.intrinsics, hm.height)
    assert np.nanmax(np.abs(pu[rows, cols] - u)) < 2.0 and np.nanmax(np.abs(pv[rows, cols] - v)) < 2.0
    ids = np.zeros(frame.depth.shape, np.int32)
    ids[frame.color[..., 0] == 200] = 7
    on_grid = sample_image(hm, ids)
    box_rows, box_cols = _cells_in(BOXES[0])
    assert np.all(on_grid[box_rows, box_cols] == 7)


def test_all_invalid_depth_gives_empty_maps():
    pose = top_down_pose()
    frame = render([], pose)
    for bad in (np.zeros_like(frame.depth), np.full_like(frame.depth, np.nan),
                np.full_like(frame.depth, np.inf)):
        hm = compute_heightmaps(RGBDFrame(frame.color, bad, frame.intrinsics, 0.0, 0), pose, GRID)
        assert not hm.valid.any() and not hm.height.any()


def test_camera_looking_away_gives_empty_maps():
    pose = Pose.look_at((2.0, 2.0, 0.7), (3.0, 3.0, 0.0))
    hm = compute_heightmaps(render([], pose), pose, GRID)
    assert not hm.valid.any()


def test_frame_that_disagrees_with_its_intrinsics_is_a_clear_error():
    pose = top_down_pose()
    frame = render([], pose)
    small = Intrinsics(320, 240, 307.5, 307.5, 159.5, 119.5)
    bogus = object.__new__(RGBDFrame)
    object.__setattr__(bogus, "color", frame.color)
    object.__setattr__(bogus, "depth", frame.depth)
    object.__setattr__(bogus, "intrinsics", small)
    with pytest.raises(PerceptionError, match="intrinsics"):
        compute_heightmaps(bogus, pose, GRID)


def test_other_resolutions_work_when_consistent():
    k = Intrinsics(320, 240, 307.5, 307.5, 159.5, 119.5)
    pose = top_down_pose()
    hm = compute_heightmaps(render(BOXES, pose, k), pose, GRID)
    rows, cols = _cells_in(BOXES[1], shrink=0.004)
    assert np.allclose(hm.height[rows, cols], 0.05, atol=1e-4)
    assert D435_COLOR_640x480.width == 640
