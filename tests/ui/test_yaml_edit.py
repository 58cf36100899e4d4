"""Form edits change only the value they name; comments and layout survive."""

from __future__ import annotations

import pytest
import yaml

from tests.ui.conftest import REPO
from ui.yaml_edit import format_scalar, set_value

TEXT = (REPO / "recipes" / "toy-blocks.yaml").read_text()


def test_existing_value_changes_in_place_and_comments_survive() -> None:
    out = set_value(TEXT, ("robot", "speed"), 0.25)
    assert yaml.safe_load(out)["robot"]["speed"] == 0.25
    changed = [(a, b) for a, b in zip(TEXT.splitlines(), out.splitlines(), strict=True) if a != b]
    assert changed == [("  speed: 0.5", "  speed: 0.25")]
    assert out.splitlines()[0].startswith("# The papers' benchmark")


def test_missing_keys_are_added_in_block_and_flow_mappings() -> None:
    out = set_value(TEXT, ("perception", "occlusion", "eps"), 0.01)
    out = set_value(out, ("loop", "max_actions_per_batch"), 12)
    out = set_value(out, ("policy", "model"), None)
    data = yaml.safe_load(out)
    shipped = {"model": "../models/toy-blocks.appearance.npz", "use": "guard"}
    assert data["perception"] == {"occlusion": {"eps": 0.01}, "appearance": shipped}
    assert data["loop"] == {"max_actions_per_batch": 12}
    assert data["policy"] == {"kind": "tcdd", "model": None}
    flow = "a: {b: 1}\n"
    assert yaml.safe_load(set_value(flow, ("a", "c", "d"), 2)) == {"a": {"b": 1, "c": {"d": 2}}}


def test_strings_are_quoted_only_when_needed() -> None:
    assert format_scalar("toy-blocks") == "toy-blocks"
    for tricky in ("a: b", "yes", "1.5", "# x", " padded", ""):
        assert yaml.safe_load(f"k: {format_scalar(tricky)}") == {"k": tricky}


def test_a_path_through_a_value_is_refused() -> None:
    with pytest.raises(ValueError, match="robot.speed"):
        set_value(TEXT, ("robot", "speed", "x"), 1)
    with pytest.raises(ValueError, match="not a single value"):
        set_value(TEXT, ("robot",), 1)
