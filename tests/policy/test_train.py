"""`sorter train` machinery on the simulated cell: it runs, logs, checkpoints and resumes exactly."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from sorter.errors import SorterError
from sorter.policy.agent import load_agent, load_model
from sorter.policy.train import CHECKPOINT, LOG, MODEL, PLOT, Trainer, TrainSettings
from sorter.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPE = load_recipe("recipes/toy-blocks.yaml")
TINY = TrainSettings(iterations=4, replay_capacity=40, warmup=2, batch_size=2, updates_per_step=1,
                     checkpoint_every=2, scenarios=(("random", 1.0),))


def _log(out):
    with open(out / LOG, newline="") as fh:
        return list(csv.DictReader(fh))


def test_training_writes_log_plot_checkpoint_and_a_loadable_model(tmp_path):
    Trainer(RECIPE, TINY, tmp_path).run()
    rows = _log(tmp_path)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert all(int(r["episode_seed"]) % 2 == 0 for r in rows)
    assert {r["kind"] for r in rows} <= {"push", "grasp"}
    for name in (CHECKPOINT, PLOT, MODEL):
        assert (tmp_path / name).stat().st_size > 0
    agent = load_agent(RECIPE, "ours", tmp_path / MODEL)
    assert agent.sha256 and agent.name == "ours"


def test_resume_continues_where_the_checkpoint_left_off(tmp_path):
    first = Trainer(RECIPE, TINY, tmp_path)
    first.run()
    with open(tmp_path / LOG, "a") as fh:
        fh.write("5," + ",".join(["0"] * 21) + "\n")  # a row written after the last checkpoint
    longer = dataclasses.replace(TINY, iterations=6)
    resumed = Trainer(RECIPE, longer, tmp_path, resume=True)
    assert resumed.state.iteration == 4 and resumed.learner.steps == first.learner.steps
    assert np.array_equal(resumed.replay.ready(), first.replay.ready())
    assert resumed.rng.bit_generator.state == first.rng.bit_generator.state
    for a, b in zip(first.net.parameters(), resumed.net.parameters(), strict=True):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    resumed.run()
    assert [int(r["iteration"]) for r in _log(tmp_path)] == [1, 2, 3, 4, 5, 6]


def test_odd_seed_and_untrainable_methods_are_refused(tmp_path):
    with pytest.raises(SorterError, match="odd"):
        Trainer(RECIPE, dataclasses.replace(TINY, seed=3), tmp_path)
    with pytest.raises(SorterError, match="runs the 'ours' weights"):
        Trainer(RECIPE, dataclasses.replace(TINY, method="no-oi"), tmp_path)
    with pytest.raises(SorterError, match="search reward 'visible' is unknown"):
        Trainer(RECIPE, dataclasses.replace(TINY, search_reward="visible"), tmp_path)
    Trainer(RECIPE, TINY, tmp_path).run()
    with pytest.raises(SorterError, match="--resume"):
        Trainer(RECIPE, TINY, tmp_path)


def test_a_new_run_can_start_from_a_trained_model(tmp_path):
    """--init copies the weights into the online and target networks; another method's file is refused."""
    start = REPO / "models" / "tcdd-ours.safetensors"
    trainer = Trainer(RECIPE, dataclasses.replace(TINY, init=str(start)), tmp_path / "ft")
    net, _, _ = load_model(start)
    for mine, target, shipped in zip(trainer.net.state_dict().values(),
                                     trainer.learner.target.state_dict().values(),
                                     net.state_dict().values(), strict=True):
        assert torch.equal(mine, shipped) and torch.equal(target, shipped)
    with pytest.raises(SorterError, match="holds 'no-t' weights"):
        Trainer(RECIPE, dataclasses.replace(TINY, init=str(REPO / "models" / "tcdd-no-t.safetensors")),
                tmp_path / "other")


def test_search_pushes_earn_the_uncovering_reward_only_when_asked(tmp_path, monkeypatch):
    """With TCDD never paying (patched), a push can only be rewarded by uncovering the hidden block, and
    only while searching (no impurity shows) and only with ``search_reward: occlusion``."""
    from sorter.policy import rewards

    monkeypatch.setattr(rewards, "push_reward_for", lambda *args: 0.0)
    start = REPO / "models" / "tcdd-ours.safetensors"
    runs = {}
    for search in ("occlusion", "tcdd"):
        settings = dataclasses.replace(TINY, iterations=16, scenarios=(("invisible", 1.0),), seed=4,
                                       search_reward=search, init=str(start), epsilon=(0.0, 0.0))
        Trainer(RECIPE, settings, tmp_path / search).run()
        runs[search] = [r for r in _log(tmp_path / search) if r["kind"] == "push"]
    searching = [float(r["reward"]) for r in runs["occlusion"] if r["mode"] == "cluster"]
    assert searching and max(searching) == 0.5
    assert all(float(r["reward"]) == 0.0 for r in runs["occlusion"] if r["mode"] != "cluster")
    assert all(float(r["reward"]) == 0.0 for r in runs["tcdd"])


def test_each_episode_pushes_in_heap_searches_as_its_recipe_says(tmp_path):
    """A general model's episodes draw their product; the agent strips heap searches exactly in the
    episodes of a recipe with ``policy.search_push: strip`` (coal-slate), as it will when it runs."""
    coal = load_recipe("recipes/coal-slate.yaml")
    trainer = Trainer([RECIPE, coal], TINY, tmp_path)
    seen = set()
    for _ in range(12):
        trainer._new_episode()
        seen.add((trainer.recipe.product.name, trainer.agent.strip_searches))
    assert seen == {(RECIPE.product.name, False), (coal.product.name, True)}
