"""Recipe loading: every shipped recipe is valid; every broken one is reported by file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sorter.recipe import RecipeError, load_recipe, parse_recipe, recipe_json_schema
from tests.conftest import RECIPES

TOY = next(p for p in RECIPES if p.name == "toy-blocks.yaml")


def test_at_least_four_recipes_ship_including_the_paper_benchmark() -> None:
    assert len(RECIPES) >= 4
    assert TOY in RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_loads_into_frozen_objects(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.product.name == path.stem
    assert len(recipe.sha256) == 64
    grid = recipe.workspace.grid()
    assert grid.cells == 224 and grid.cell_size == pytest.approx(0.002)
    with pytest.raises(Exception, match="frozen"):
        recipe.product.name = "other"  # type: ignore[misc]
    widest = max(max(o.size.max[:2]) for o in recipe.sim.items + recipe.sim.impurities)
    assert min(widest, 0.2) < recipe.gripper.max_opening, "every object must fit the open gripper"
    assert not grid.contains(*recipe.reject_bin.position[:2]), "the bin lies outside the workspace"


def _issues(text: str) -> list:
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, "r.yaml")
    return info.value.issues


def _only_issue(text: str, field: str, on_line: str):
    """The one issue of ``text``: it names ``field`` and the line holding ``on_line``."""
    (issue,) = _issues(text)
    assert issue.field == field
    assert on_line in text.splitlines()[issue.line - 1]
    return issue


def test_unknown_key_names_line_field_and_allowed_keys() -> None:
    text = TOY.read_text().replace("  fps: 30\n", "  fps: 30\n  fsp: 30\n")
    (issue,) = _issues(text)
    assert issue.file == "r.yaml"
    assert text.splitlines()[issue.line - 1].strip() == "fsp: 30"
    assert issue.field == "camera.fsp"
    assert "unknown key" in issue.message and "fps" in issue.message


def test_out_of_range_value_is_located_at_its_line() -> None:
    text = TOY.read_text().replace("max_opening: 0.085", "max_opening: 0.5")
    issue = _only_issue(text, "gripper.max_opening", "max_opening: 0.5")
    assert "0.2" in issue.message


def test_a_pad_margin_wider_than_a_centimetre_is_refused_at_its_line() -> None:
    coal = next(p for p in RECIPES if p.name == "coal-slate.yaml")
    text = coal.read_text().replace("pad_margin: 0.002", "pad_margin: 0.05")
    issue = _only_issue(text, "policy.pad_margin", "pad_margin: 0.05")
    assert "0.01" in issue.message


def test_a_shove_aside_rule_needs_both_bounds_within_range() -> None:
    potatoes = next(p for p in RECIPES if p.name == "potatoes-clods.yaml")
    line = "shove_aside: {across: 0.021, max_area: 0.0028}"
    assert line in potatoes.read_text()
    issue = _only_issue(potatoes.read_text().replace(line, "shove_aside: {across: 0.021}"),
                        "policy.shove_aside.max_area", "shove_aside:")
    assert "required" in issue.message.lower() or "missing" in issue.message.lower()
    issue = _only_issue(potatoes.read_text().replace("across: 0.021", "across: 0.21"),
                        "policy.shove_aside.across", "shove_aside:")
    assert "0.05" in issue.message


def test_a_feature_contrast_floor_outside_zero_to_one_is_refused_at_its_line() -> None:
    mushrooms = next(p for p in RECIPES if p.name == "mushrooms-stones.yaml")
    assert load_recipe(mushrooms).perception.saliency.min_feature_contrast == 0.045
    assert load_recipe(TOY).perception.saliency.min_feature_contrast is None, "the method's own floor"
    text = mushrooms.read_text().replace("min_feature_contrast: 0.045", "min_feature_contrast: 0")
    issue = _only_issue(text, "perception.saliency.min_feature_contrast", "min_feature_contrast: 0")
    assert "greater than 0" in issue.message


def test_a_policy_kind_this_release_cannot_run_is_refused_at_its_line() -> None:
    text = TOY.read_text().replace("kind: tcdd", "kind: opg")
    issue = _only_issue(text, "policy.kind", "kind: opg")
    assert "'tcdd'" in issue.message and "'heuristic'" in issue.message


def test_nested_list_error_names_the_item() -> None:
    text = TOY.read_text().replace("shape: cylinder", "shape: pyramid", 1)
    issue = _only_issue(text, "sim.items[2].shape", "pyramid")
    assert "'box'" in issue.message


def test_rolling_friction_is_bounded_per_object_kind() -> None:
    potatoes = next(p for p in RECIPES if p.name == "potatoes-clods.yaml")
    assert load_recipe(potatoes).sim.items[0].rolling_friction == pytest.approx(0.002)
    assert load_recipe(TOY).sim.items[0].rolling_friction == 0.0
    text = potatoes.read_text().replace("rolling_friction: 0.002", "rolling_friction: -0.002")
    issue = _only_issue(text, "sim.items[0].rolling_friction", "rolling_friction: -0.002")
    assert "greater than or equal to 0" in issue.message


def test_cross_field_rules_are_reported() -> None:
    issues = _issues(TOY.read_text().replace("  model: ../models/tcdd-ours.safetensors\n", ""))
    assert [i.field for i in issues] == ["policy"]
    assert "model" in issues[0].message
    issues = _issues(TOY.read_text().replace("x: [0.300, 0.748]", "x: [0.300, 0.700]"))
    assert "bounds.x" in issues[0].message


def test_missing_section_and_duplicate_key() -> None:
    text = TOY.read_text()
    start = text.index("reject_bin:")
    issues = _issues(text[:start] + text[text.index("policy:"):])
    assert any(i.field == "reject_bin" and "missing" in i.message for i in issues)
    dup = text.replace("  fps: 30\n", "  fps: 30\n  fps: 15\n")
    (issue,) = _issues(dup)
    assert issue.field == "camera.fps" and "twice" in issue.message
    assert dup.splitlines()[issue.line - 1].strip() == "fps: 15"


NOT_RECIPES = ["", "- a\n- b\n", "just a string", "a: [1, 2\n", "\t- x: 1", "!!python/object:os.system {}"]


@pytest.mark.parametrize("text", NOT_RECIPES)
def test_not_a_recipe_at_all(text: str) -> None:
    issues = _issues(text)
    assert issues and all(i.line is not None for i in issues)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="cannot read"):
        load_recipe(tmp_path / "absent.yaml")


def test_relative_paths_resolve_against_the_recipe_folder() -> None:
    recipe = load_recipe(TOY)
    assert recipe.resolve("../models/x.safetensors") == TOY.parent.resolve() / "../models/x.safetensors"


def test_json_schema_forbids_unknown_keys() -> None:
    schema = json.loads(recipe_json_schema())
    assert schema["additionalProperties"] is False
    assert {"product", "workspace", "camera", "robot", "gripper", "sim"} <= set(schema["required"])


_TOY_TEXT = TOY.read_text()


@st.composite
def broken_recipes(draw: st.DrawFn) -> str:
    """Mutations of a valid recipe: deleted, duplicated or swapped lines, and random text spliced in."""
    lines = _TOY_TEXT.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "swap", "splice", "indent"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete":
            del lines[i]
        elif op == "insert":
            lines.insert(i, draw(st.text(max_size=30)) + "\n")
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "splice":
            pos = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:pos] + draw(st.text(min_size=1, max_size=8)) + lines[i][pos:]
        else:
            lines[i] = " " * draw(st.integers(1, 5)) + lines[i]
        if not lines:
            lines = ["\n"]
    return "".join(lines)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(broken_recipes())
def test_broken_yaml_always_yields_a_located_recipe_error(text: str) -> None:
    try:
        parse_recipe(text, "broken.yaml")
    except RecipeError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.file == "broken.yaml"
            assert issue.line is not None and 1 <= issue.line <= max(1, text.count("\n") + 1)
            assert str(issue).startswith(f"broken.yaml:{issue.line}:")


def test_lump_style_is_one_of_the_known_ones() -> None:
    coal = next(p for p in RECIPES if p.name == "coal-slate.yaml")
    assert load_recipe(coal).sim.items[0].lump == "blocky"
    assert load_recipe(TOY).sim.items[0].lump == "angular"
    text = coal.read_text().replace("lump: blocky", "lump: round")
    issue = _only_issue(text, "sim.items[0].lump", "lump: round")
    assert "'blocky'" in issue.message


def test_lump_on_a_shape_that_is_not_a_mesh_is_refused() -> None:
    text = TOY.read_text().replace("shape: cylinder", "shape: cylinder, lump: blocky", 1)
    (issue,) = _issues(text)
    assert issue.field == "sim.items[2]"
    assert "'lump' applies to shape 'mesh' only" in issue.message


def test_search_push_is_table_or_strip_and_a_wrong_value_is_refused_at_its_line() -> None:
    coal = next(p for p in RECIPES if p.name == "coal-slate.yaml")
    assert load_recipe(coal).policy.search_push == "strip"
    assert load_recipe(TOY).policy.search_push == "table", "paper 2's push at the table by default"
    text = coal.read_text().replace("search_push: strip", "search_push: skim")
    issue = _only_issue(text, "policy.search_push", "search_push: skim")
    assert "table" in issue.message and "strip" in issue.message


def test_appearance_confirm_without_a_guard_is_refused_with_what_to_do() -> None:
    text = TOY.read_text().replace("use: guard}", "use: fuse, confirm: true}")
    assert "confirm: true" in text
    (issue,) = _issues(text)
    assert issue.field.startswith("perception.appearance")
    assert "use: guard" in issue.message
