"""Overlays land where the geometry says: the grasp footprint at the projected action, regions and heat maps
on their cells, in the camera view and the top-down view alike."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sorter.cell.base import Action, ActionKind
from sorter.geometry import PUSH_LENGTH, D435_COLOR_640x480
from sorter.recipe import load_recipe
from tests.ui.conftest import REPO
from ui.overlays import (
    GRASP_COLOR,
    PUSH_COLOR,
    REGION_COLOR,
    SIGHTING_COLOR,
    GripperShape,
    Layer,
    OverlayData,
    ViewGeometry,
    render,
)

RECIPE = load_recipe(REPO / "recipes" / "toy-blocks.yaml")
GRID = RECIPE.workspace.grid()
GRIPPER = GripperShape(RECIPE.gripper.max_opening, RECIPE.gripper.pad_width, RECIPE.gripper.pad_thickness)
GREY = 90


def _views() -> list[tuple[ViewGeometry, np.ndarray]]:
    camera = ViewGeometry.camera(GRID, RECIPE.camera.pose.pose(), D435_COLOR_640x480)
    top = ViewGeometry.top_down(GRID, 3)
    return [(camera, np.full((480, 640, 3), GREY, np.uint8)), (top, np.full((672, 672, 3), GREY, np.uint8))]


def _is(pixel: np.ndarray, color: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(color)) <= tol))


@pytest.mark.parametrize("view_index", [0, 1])
def test_grasp_footprint_and_push_arrow_are_drawn_at_the_action(view_index: int) -> None:
    view, base = _views()[view_index]
    x, y = GRID.center
    grasp = Action(ActionKind.GRASP, x, y, 0.0, math.radians(30))
    out = render(OverlayData(base, view, GRIPPER, action=grasp), {Layer.ACTION})
    reach = GRIPPER.opening / 2 + GRIPPER.pad_thickness / 2
    for side in (-1, 1):
        pad = view.world_to_image(np.array([[x + side * reach * math.cos(grasp.angle),
                                             y + side * reach * math.sin(grasp.angle), 0.0]]))[0]
        assert _is(out[int(round(pad[1])), int(round(pad[0]))], GRASP_COLOR), "finger pad at its place"
    off = view.world_to_image(np.array([[x, y + 0.03, 0.0]]))[0]
    assert _is(out[int(off[1]), int(off[0])], (GREY, GREY, GREY), tol=0), "nothing drawn beside the jaw"

    push = Action(ActionKind.PUSH, x, y, 0.0, 0.0)
    out = render(OverlayData(base, view, GRIPPER, action=push), {Layer.ACTION})
    mid = view.world_to_image(np.array([[x + PUSH_LENGTH / 2, y, 0.0]]))[0]
    assert _is(out[int(round(mid[1])), int(round(mid[0]))], PUSH_COLOR), "arrow along the push direction"
    assert _is(render(OverlayData(base, view, GRIPPER, action=push), set())[int(mid[1]), int(mid[0])],
               (GREY, GREY, GREY), tol=0), "the action layer switched off draws nothing"


@pytest.mark.parametrize("view_index", [0, 1])
def test_region_cluster_and_heat_maps_cover_their_cells(view_index: int) -> None:
    view, base = _views()[view_index]
    rows, cols = np.indices((GRID.cells, GRID.cells))
    region = (rows - 50) ** 2 + (cols - 60) ** 2 < 15 ** 2
    cluster = (rows - 160) ** 2 + (cols - 150) ** 2 < 25 ** 2
    saliency = region.astype(float)
    data = OverlayData(base, view, GRIPPER, saliency=saliency, regions=[region], cluster=cluster)

    def pixel_of(row: int, col: int) -> tuple[int, int]:
        x, y = GRID.center_of(row, col)
        u, v = view.world_to_image(np.array([[float(x), float(y), GRID.table_z]]))[0]
        return int(round(v)), int(round(u))

    out = render(data, {Layer.REGIONS, Layer.CLUSTER})
    v, u = pixel_of(50, 74)
    window = out[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3)
    assert any(_is(p, REGION_COLOR, tol=60) for p in window), "region outline on the region's edge"
    assert _is(out[pixel_of(50, 60)], (GREY, GREY, GREY), tol=0), "a region is outlined, not filled"
    cluster_centre = out[pixel_of(160, 150)]
    assert not _is(cluster_centre, (GREY, GREY, GREY), tol=0) and cluster_centre[2] > cluster_centre[0]
    heat = render(data, {Layer.SALIENCY})
    assert heat[pixel_of(50, 60)].astype(int).sum() > heat[pixel_of(160, 150)].astype(int).sum() + 60, \
        "the salient cells are brighter than the rest"
    assert np.array_equal(render(data, set())[pixel_of(50, 60)], base[pixel_of(50, 60)])


@pytest.mark.parametrize("view_index", [0, 1])
def test_a_sighting_is_outlined_on_the_cluster_layer(view_index: int) -> None:
    """What a guard saw unlike the product (where a cluster search pushes) is outlined in its own colour
    with the cluster, and goes with the cluster layer."""
    view, base = _views()[view_index]
    rows, cols = np.indices((GRID.cells, GRID.cells))
    cluster = (rows - 120) ** 2 + (cols - 110) ** 2 < 40 ** 2
    sighting = (np.abs(rows - 120) < 6) & (np.abs(cols - 146) < 5)
    data = OverlayData(base, view, GRIPPER, cluster=cluster, sighting=sighting)
    x, y = GRID.center_of(120, 141)  # the sighting's left edge
    u, v = view.world_to_image(np.array([[float(x), float(y), GRID.table_z]]))[0]
    out = render(data, {Layer.CLUSTER})
    window = out[int(round(v)) - 2:int(round(v)) + 3, int(round(u)) - 2:int(round(u)) + 3].reshape(-1, 3)
    assert any(_is(p, SIGHTING_COLOR, tol=60) for p in window), "sighting outline on its edge"
    bare = render(OverlayData(base, view, GRIPPER, cluster=cluster), {Layer.CLUSTER})
    assert not any(_is(p, SIGHTING_COLOR, tol=60) for p in bare.reshape(-1, 3)[::7]), "none without one"
    assert np.array_equal(render(data, set()), render(OverlayData(base, view, GRIPPER), set()))


def test_a_frame_s_sighting_reaches_the_overlay() -> None:
    from sorter.loop import FrameOverlay
    from ui.run_view import overlay_from_frame

    sighting = np.zeros((GRID.cells, GRID.cells), bool)
    sighting[100:110, 50:60] = True
    color = np.zeros((GRID.cells, GRID.cells, 3), np.uint8)
    ev = FrameOverlay(1, np.zeros((480, 640, 3), np.uint8), color, np.zeros(color.shape[:2], np.float32),
                      "cluster", None, None, (), None, None, None, None, sighting=sighting)
    assert overlay_from_frame(ev, RECIPE, None, top_down=True).sighting is sighting
