"""Shipped model files: each has a card that names its sha256, and every recipe's files exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from sorter.policy.agent import file_sha256
from sorter.recipe import load_recipe
from tests.conftest import RECIPES

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = sorted([*MODELS.glob("*.safetensors"), *MODELS.glob("*.npz")])


def test_models_ship() -> None:
    assert any(p.suffix == ".safetensors" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_model_file_has_a_card_naming_its_sha256(path: Path) -> None:
    card = path.with_suffix(".md")
    assert card.is_file(), f"{path.name} ships without its card {card.name}"
    assert file_sha256(path) in card.read_text(encoding="utf-8"), f"{card.name} names another sha256"
    assert f"`{path.name}`" in (MODELS / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_names_shipped_model_files(path: Path) -> None:
    recipe = load_recipe(path)
    named = [recipe.policy.model, recipe.perception.appearance.model]
    shipped = [p.resolve() for p in SHIPPED]
    for name in filter(None, named):
        assert recipe.resolve(name).resolve() in shipped, f"{path.name}: {name} is not shipped"
