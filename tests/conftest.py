"""Shared by every test folder: the shipped recipes, loaded once per session (recipes are frozen)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sorter.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
RECIPE_IDS = [p.stem for p in RECIPES]


@pytest.fixture(scope="session")
def recipes() -> dict:
    return {p.stem: load_recipe(p) for p in RECIPES}
