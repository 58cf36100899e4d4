"""Shared pieces for pick-loop tests: the toy-blocks recipe on the simulated cell, and event helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sorter.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
EVENT_TIMEOUT = 120.0  # s; generous so a loaded 2-core machine does not fail a behaviour test


@pytest.fixture(scope="session")
def toy_recipe():
    return load_recipe(RECIPES / "toy-blocks.yaml")


@pytest.fixture(scope="session")
def attender(toy_recipe):
    from sorter.perception.attention import load_attender

    return load_attender(toy_recipe)


@pytest.fixture
def cell(toy_recipe):
    from sorter.cell.factory import open_cell

    with open_cell(toy_recipe, seed=1) as c:
        yield c


@pytest.fixture
def runlog(tmp_path):
    from sorter.runlog import RunLog

    with RunLog(tmp_path / "runs.sqlite") as log:
        yield log


def make_loop(recipe, cell, attender, runlog, *, policy=None, limits=None, options=None, seed=1):
    from sorter.loop import LoopOptions, PickLoop, RunLimits
    from sorter.policy.heuristic import HeuristicPolicy

    return PickLoop(recipe, cell, policy or HeuristicPolicy(recipe), attender, runlog,
                    np.random.default_rng(seed), limits or RunLimits(max_cycles=30),
                    options or LoopOptions(seed=seed, frames=False))


def wait_for(events, predicate, seen: list | None = None, timeout: float = EVENT_TIMEOUT):
    """The first event matching ``predicate``; every event taken is appended to ``seen``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = events.get(timeout=0.5)
        if event is None:
            continue
        if seen is not None:
            seen.append(event)
        if predicate(event):
            return event
    raise AssertionError(f"no matching event within {timeout} s")
