"""Shared pieces for the simulated-cell tests: one SimCell per shipped recipe."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cells(recipes) -> dict:
    """One cell per recipe, kept for the session: the camera's static background is built once."""
    from sorter.cell.sim.cell import SimCell

    return {name: SimCell(recipe) for name, recipe in recipes.items()}


@pytest.fixture
def toy(cells):
    return cells["toy-blocks"]
