"""The fully convolutional push-grasp Q network and the rotate / un-rotate sampling around it.

Paper 2 (section 5.2.1) feeds a target-centric RGB-D heightmap and a target-mask heightmap (the same maps
ANDed with the attention mask) through DenseNet towers at 16 rotations. Here both heightmaps and the mask
itself are stacked as channels of one half-resolution (4 mm) scene tensor, and a compact network trained
from scratch replaces the pretrained towers so it learns on a 2-core CPU.

Rotation works like VPG: the network only ever sees pushes to the right (+x) and grasps whose jaw line
lies along x, so the scene is sampled into a window turned by each policy angle, the network runs on all
16 windows as one batch, and every region cell reads its Q value back from the turned output. The window
sampling and the read-back are each one ``grid_sample`` call, so one pass serves all rotations and the
training loss reads its single executed pixel through exactly the same arithmetic.

Coordinates: a scene tensor spans the whole workspace, normalised to [-1, 1] along x (columns) and y
(rows) as ``grid_sample`` with ``align_corners=False`` expects; all offsets below are in that unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch convention)
from torch import nn

from sorter.geometry import N_ROTATIONS, WorkspaceGrid, rotation_angle

SCENE_DOWNSAMPLE = 2  # network input cell = 2 heightmap cells (4 mm): objects are >= 22 mm across
HEIGHT_SCALE = 0.05  # m; heights are divided by this so a typical item reads about 1
COLOR_MEAN = 0.45
COLOR_STD = 0.25
IN_CHANNELS = 9  # rgb, height, mask, mask*rgb, mask*height (paper 2: target-centric + target-mask maps)
WIDTH = 32
DILATIONS = (1, 2, 4, 8)  # receptive field about 13 cm at 8 mm features: a 10 cm push plus its target
PUSH, GRASP = 0, 1  # head order in every Q tensor


class QNetwork(nn.Module):
    """Maps rotated scene windows ``(N, 9, S, S)`` to push and grasp Q ``(N, 2, S/2, S/2)``.

    A stride-2 stem (kernel 4, so output cells stay centred on input cell pairs), four residual dilated
    3x3 layers and one small convolutional head per primitive.
    """

    def __init__(self, in_channels: int = IN_CHANNELS, width: int = WIDTH):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 4, stride=2, padding=1)
        self.trunk = nn.ModuleList(nn.Conv2d(width, width, 3, padding=d, dilation=d) for d in DILATIONS)
        self.heads = nn.ModuleList(_head(width) for _ in (PUSH, GRASP))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(windows))
        for conv in self.trunk:
            x = x + F.relu(conv(x))
        return torch.cat([head(x) for head in self.heads], dim=1)


def _head(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 1))


@dataclass(frozen=True)
class Region:
    """A square block of heightmap cells the policy may act in: top-left cell and side in cells."""

    row0: int
    col0: int
    size: int

    @classmethod
    def around(cls, row: int, col: int, size: int) -> Region:
        return cls(int(row) - size // 2, int(col) - size // 2, size)

    @classmethod
    def whole(cls, grid: WorkspaceGrid) -> Region:
        return cls(0, 0, grid.cells)

    def center_norm(self, grid: WorkspaceGrid) -> tuple[float, float]:
        """Centre of the block in the scene's normalised (x, y)."""
        half = grid.cells / 2.0
        return ((self.col0 + self.size / 2.0) / half - 1.0, (self.row0 + self.size / 2.0) / half - 1.0)

    def window_cells(self) -> int:
        """Side of the rotation window in network cells: the block's diagonal, rounded up to 4."""
        diag = self.size * math.sqrt(2.0) / SCENE_DOWNSAMPLE
        return int(math.ceil(diag / 4.0) * 4)

    def inside_grid(self, grid: WorkspaceGrid) -> np.ndarray:
        """``size x size`` bool: which cells of the block lie inside the workspace grid."""
        r = np.arange(self.row0, self.row0 + self.size)
        c = np.arange(self.col0, self.col0 + self.size)
        return ((r >= 0) & (r < grid.cells))[:, None] & ((c >= 0) & (c < grid.cells))[None, :]


def pool_maps(color: np.ndarray, height: np.ndarray,
              mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compact 4 mm maps for storage: colour ``(3, h, w)`` uint8, height (m) float16, mask uint8 0..255.

    ``mask`` None (target-agnostic methods) gives an all-zero mask.
    """
    n = SCENE_DOWNSAMPLE
    rows, cols = height.shape[0] // n, height.shape[1] // n

    def pool(a: np.ndarray) -> np.ndarray:
        a = a[: rows * n, : cols * n].astype(np.float32)
        return a.reshape(rows, n, cols, n, *a.shape[2:]).mean(axis=(1, 3))

    m = np.zeros(height.shape, np.float32) if mask is None else mask.astype(np.float32)
    rgb = np.rint(pool(color)).astype(np.uint8).transpose(2, 0, 1)
    return np.ascontiguousarray(rgb), pool(height).astype(np.float16), np.rint(pool(m) * 255).astype(np.uint8)


def scene_channels(rgb: np.ndarray, height: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Network input ``(..., 9, h, w)`` float32 from pooled maps (leading batch axes allowed)."""
    c = (rgb.astype(np.float32) / 255.0 - COLOR_MEAN) / COLOR_STD
    h = height.astype(np.float32)[..., None, :, :] / HEIGHT_SCALE
    m = mask.astype(np.float32)[..., None, :, :] / 255.0
    return np.concatenate([c, h, m, m * c, m * h], axis=-3)


def encode_scene(color: np.ndarray, height: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Network input channels ``(9, H/2, W/2)`` from full-resolution maps (``mask`` None: no target)."""
    return scene_channels(*pool_maps(color, height, mask))


def rotation_angles(device: torch.device | None = None) -> torch.Tensor:
    return torch.tensor([rotation_angle(i) for i in range(N_ROTATIONS)], dtype=torch.float32, device=device)


def window_thetas(centers: torch.Tensor, scale: float, angles: torch.Tensor) -> torch.Tensor:
    """Affine maps ``(N, 2, 3)`` from window coordinates to scene coordinates.

    Window +x points along the policy angle, so scene point = centre + scale * R(angle) @ window point;
    ``scale`` is the window's side over the scene's side.
    """
    cos, sin = torch.cos(angles) * scale, torch.sin(angles) * scale
    row0 = torch.stack([cos, -sin, centers[:, 0]], dim=-1)
    row1 = torch.stack([sin, cos, centers[:, 1]], dim=-1)
    return torch.stack([row0, row1], dim=1)


def sample_windows(scenes: torch.Tensor, centers: torch.Tensor, angles: torch.Tensor,
                   window: int) -> torch.Tensor:
    """Rotated windows ``(N, C, window, window)`` cut from ``scenes`` (N or 1, C, S, S); zero outside."""
    n = angles.shape[0]
    scale = window / scenes.shape[-1]
    theta = window_thetas(centers.expand(n, 2), scale, angles)
    grid = F.affine_grid(theta, [n, scenes.shape[1], window, window], align_corners=False)
    return F.grid_sample(scenes.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def read_back(q: torch.Tensor, offsets: torch.Tensor, angles: torch.Tensor, scale: float) -> torch.Tensor:
    """Sample rotated Q maps ``(N, 2, h, w)`` at scene offsets from the window centre.

    ``offsets`` is ``(N or 1, P, Q, 2)`` (normalised scene units, x then y); each is turned into the
    window's frame by R(-angle) and divided by ``scale``. Returns ``(N, 2, P, Q)``.
    """
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    ox, oy = offsets[..., 0], offsets[..., 1]
    grid = torch.stack([cos * ox + sin * oy, -sin * ox + cos * oy], dim=-1) / scale
    return F.grid_sample(q, grid, mode="bilinear", padding_mode="border", align_corners=False)


def region_offsets(region: Region, grid: WorkspaceGrid) -> torch.Tensor:
    """Normalised scene offsets ``(1, size, size, 2)`` of every cell centre from the region centre."""
    k = (torch.arange(region.size, dtype=torch.float32) + 0.5 - region.size / 2.0) / (grid.cells / 2.0)
    yy, xx = torch.meshgrid(k, k, indexing="ij")
    return torch.stack([xx, yy], dim=-1)[None]


def q_region(net: QNetwork, scene: torch.Tensor, region: Region, grid: WorkspaceGrid) -> torch.Tensor:
    """Push and grasp Q of every region cell at every rotation: ``(2, 16, size, size)``.

    ``scene`` is one encoded scene ``(1, C, S, S)``; all 16 rotations run as one batch.
    """
    angles = rotation_angles(scene.device)
    center = torch.tensor([region.center_norm(grid)], dtype=torch.float32, device=scene.device)
    window = region.window_cells()
    q = net(sample_windows(scene, center, angles, window))
    out = read_back(q, region_offsets(region, grid).to(scene.device), angles, window / scene.shape[-1])
    return out.transpose(0, 1)


def q_at(net: QNetwork, scenes: torch.Tensor, centers: torch.Tensor, angles: torch.Tensor,
         offsets: torch.Tensor, window: int) -> torch.Tensor:
    """Push and grasp Q ``(N, 2)`` at one executed cell per sample, for the training loss.

    ``centers`` ``(N, 2)`` are window centres, ``offsets`` ``(N, 2)`` the cells' offsets from them, both
    normalised; only the executed rotation of each sample is run.
    """
    scale = window / scenes.shape[-1]
    theta = window_thetas(centers, scale, angles)
    grid = F.affine_grid(theta, [scenes.shape[0], scenes.shape[1], window, window], align_corners=False)
    windows = F.grid_sample(scenes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    q = net(windows)
    return read_back(q, offsets[:, None, None, :], angles, scale)[:, :, 0, 0]
