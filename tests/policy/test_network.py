"""The rotation-batched Q network: geometry of the rotate / un-rotate sampling and single-pixel reads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch convention)

from sorter.geometry import CROP_CELLS, N_ROTATIONS, WorkspaceGrid
from sorter.policy import network as N  # noqa: N812 (short alias for the module under test)

GRID = WorkspaceGrid(0.300, -0.224)


class HeightProbe(torch.nn.Module):
    """Stands in for the trained layers: returns the window's height channel at the network's output
    resolution, so whatever comes back through ``read_back`` must be the scene itself."""

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(windows[:, 3:4], 2)
        return torch.cat([h, -h], dim=1)


def _scene_with_block(rows: slice, cols: slice) -> tuple[np.ndarray, torch.Tensor]:
    height = np.zeros((GRID.cells, GRID.cells), np.float32)
    height[rows, cols] = 0.03
    color = np.zeros((GRID.cells, GRID.cells, 3), np.uint8)
    return height, torch.from_numpy(N.encode_scene(color, height, None))[None]


def test_every_rotation_reads_back_the_scene_in_place():
    height, scene = _scene_with_block(slice(100, 120), slice(140, 150))
    region = N.Region(56, 56, CROP_CELLS)
    q = N.q_region(HeightProbe(), scene, region, GRID)
    assert q.shape == (2, N_ROTATIONS, CROP_CELLS, CROP_CELLS)
    truth = height[56:168, 56:168] / N.HEIGHT_SCALE
    rows, cols = np.nonzero(truth)
    for r in range(N_ROTATIONS):
        m = q[0, r].numpy()
        assert np.abs(m - truth).mean() < 0.01
        w = np.clip(m, 0, None)
        ii, jj = np.indices(m.shape)
        centroid = np.array([(ii * w).sum(), (jj * w).sum()]) / w.sum()
        assert np.abs(centroid - [rows.mean(), cols.mean()]).max() <= 1.0  # cells (2 mm)


def test_rotation_turns_the_policy_angle_onto_window_x():
    """A block 6 cm from the centre along angle i appears on the rotated window's +x axis."""
    for i in range(N_ROTATIONS):
        angle = 2 * math.pi * i / N_ROTATIONS
        r = int(round(112 + 30 * math.sin(angle)))
        c = int(round(112 + 30 * math.cos(angle)))
        _, scene = _scene_with_block(slice(r - 3, r + 3), slice(c - 3, c + 3))
        windows = N.sample_windows(scene, torch.zeros(1, 2), torch.tensor([angle]), 80)
        h = windows[0, 3].numpy()
        row, col = np.unravel_index(np.argmax(h), h.shape)
        assert abs(row - 39.5) <= 2 and abs(col - (39.5 + 15)) <= 2


def test_single_pixel_read_matches_the_batched_maps():
    torch.manual_seed(0)
    net = N.QNetwork().eval()
    rng = np.random.default_rng(2)
    height = rng.uniform(0, 0.04, (GRID.cells, GRID.cells)).astype(np.float32)
    color = rng.integers(0, 255, (GRID.cells, GRID.cells, 3), dtype=np.uint8)
    scene = torch.from_numpy(N.encode_scene(color, height, height > 0.02))[None]
    region = N.Region(20, 90, CROP_CELLS)
    with torch.inference_mode():
        full = N.q_region(net, scene, region, GRID)
        centre = torch.tensor([region.center_norm(GRID)])
        offsets = N.region_offsets(region, GRID)[0]
        angles = N.rotation_angles()
        for rot, i, j in [(0, 0, 0), (5, 50, 77), (11, 111, 3), (15, 60, 60)]:
            one = N.q_at(net, scene, centre, angles[rot:rot + 1], offsets[i, j][None], region.window_cells())
            assert one[0].numpy() == pytest.approx(full[:, rot, i, j].numpy(), abs=1e-5)


def test_pooled_maps_round_trip_to_the_same_network_input():
    rng = np.random.default_rng(4)
    color = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
    height = rng.uniform(0, 0.05, (224, 224)).astype(np.float32)
    mask = np.zeros((224, 224), bool)
    mask[40:80, 40:80] = True
    x = N.scene_channels(*N.pool_maps(color, height, mask))
    assert x.shape == (N.IN_CHANNELS, 112, 112)
    assert np.all(x[4, 20:40, 20:40] == 1.0) and np.all(x[4, :20] == 0.0)
    assert np.allclose(x[8], x[4] * x[3])
    assert np.all(N.scene_channels(*N.pool_maps(color, height, None))[4:] == 0.0)


def test_window_covers_the_rotated_region():
    assert N.Region(0, 0, CROP_CELLS).window_cells() * N.SCENE_DOWNSAMPLE >= CROP_CELLS * math.sqrt(2)
    assert N.Region.whole(GRID).window_cells() % 4 == 0
