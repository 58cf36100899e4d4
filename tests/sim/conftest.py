"""Shared pieces for the simulated-cell tests: every shipped recipe, one SimCell per recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from sorter.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))
RECIPE_IDS = [p.stem for p in RECIPES]


@pytest.fixture(scope="session")
def recipes() -> dict:
    return {p.stem: load_recipe(p) for p in RECIPES}


@pytest.fixture(scope="session")
def cells(recipes) -> dict:
    """One cell per recipe, kept for the session: the camera's static background is built once."""
    from sorter.cell.sim.cell import SimCell

    return {name: SimCell(recipe) for name, recipe in recipes.items()}


@pytest.fixture
def toy(cells):
    return cells["toy-blocks"]
