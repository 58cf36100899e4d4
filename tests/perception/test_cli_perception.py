"""`sorter teach`, `sorter eval perception` and `sorter bench perception` end to end on the simulated cell."""

import json
from pathlib import Path

import pytest

from sorter.cli import main

TOY = Path(__file__).resolve().parents[2] / "recipes" / "toy-blocks.yaml"


def _recipe_copy(tmp_path: Path, model: str | None = None) -> Path:
    """toy-blocks beside the test, naming ``model`` as its taught look (none: saliency alone)."""
    shipped = "appearance: {model: ../models/toy-blocks.appearance.npz, use: guard}"
    text = TOY.read_text()
    assert shipped in text
    path = tmp_path / "toy-blocks.yaml"
    path.write_text(text.replace(shipped, f"appearance: {{model: {model}}}" if model else "{}"))
    return path


def test_eval_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(["eval", "perception", "--recipe", str(TOY), "--scenario", "random", "--scenes", "1",
               "--baseline", "spectral", "--json", str(out)])
    text = capsys.readouterr()
    assert rc == 0
    assert "| random | vocus2 |" in text.out and "| random | spectral |" in text.out
    assert "guards against declaring a batch clean" in text.err
    doc = json.loads(out.read_text())
    for key in ("top1_hit", "recall_topk", "false_alarm", "cluster_hit", "msr_targ", "gsi",
                "attention_ms_median", "stage_ms_median"):
        assert key in doc
    assert doc["top1_hit"] == 1.0 and doc["false_alarm"] == 0.0
    assert [r["method"] for r in doc["results"]] == ["vocus2", "spectral"]


@pytest.mark.parametrize("argv, message", [
    (["--seed", "2"], "even"),
    (["--scenario", "sideways"], "unknown scenario"),
    (["--scenario", "clean"], "unknown scenario"),
])
def test_eval_rejects_bad_arguments_with_a_message(argv, message, capsys):
    rc = main(["eval", "perception", "--recipe", str(TOY), "--scenes", "1", *argv])
    assert rc == 1 and message in capsys.readouterr().err


def test_teach_saves_beside_the_recipe_and_eval_uses_it(tmp_path, capsys):
    recipe = _recipe_copy(tmp_path)
    assert main(["teach", "--recipe", str(recipe), "--frames", "3"]) == 0
    text = capsys.readouterr().out
    model = tmp_path / "toy-blocks.appearance.npz"
    assert model.is_file() and "appearance: {model: toy-blocks.appearance.npz}" in text
    named = _recipe_copy(tmp_path, "toy-blocks.appearance.npz")
    out = tmp_path / "eval.json"
    assert main(["eval", "perception", "--recipe", str(named), "--scenario", "random", "--scenes", "1",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["appearance"] is True
    assert main(["teach", "--recipe", str(named), "--seed", "1"]) == 1
    assert "even" in capsys.readouterr().err


def test_a_named_but_missing_model_is_a_clear_error(tmp_path, capsys):
    recipe = _recipe_copy(tmp_path, "gone.appearance.npz")
    rc = main(["eval", "perception", "--recipe", str(recipe), "--scenes", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and "gone.appearance.npz" in err and "sorter teach" in err


def test_bench_prints_its_figures(capsys):
    assert main(["bench", "perception", "--recipe", str(TOY), "--scenes", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for stage in ("heightmap", "vocus2", "attention"):
        assert stage in out
