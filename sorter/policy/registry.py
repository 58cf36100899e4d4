"""The policy a recipe asks for: the scripted heuristic, or a learned agent loaded from its model file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sorter.errors import ModelFileError
from sorter.policy.base import Policy


def make_policy(recipe) -> Policy:
    """The recipe's policy; a learned kind whose model file is missing raises ModelFileError."""
    kind = recipe.policy.kind
    if kind == "heuristic":
        from sorter.policy.heuristic import HeuristicPolicy

        return HeuristicPolicy(recipe)
    path = model_path(recipe)
    if path is None or not path.is_file():
        raise ModelFileError(
            f"policy '{kind}' needs its model file {path} (recipe policy.model), which does not exist; "
            "train one with `sorter train`, copy a shipped model from models/, or set policy.kind to "
            "'heuristic'")
    try:
        from sorter.policy.agent import load_agent
    except ImportError as exc:
        raise ModelFileError(f"cannot load the learned '{kind}' policy ({exc}); use policy.kind "
                             "'heuristic' until the learned agent is installed") from None
    return load_agent(recipe)


def model_path(recipe) -> Path | None:
    """The recipe's model file, resolved against the recipe's folder; None for the heuristic."""
    return recipe.resolve(recipe.policy.model) if recipe.policy.model else None


def model_sha256(recipe) -> str:
    """SHA-256 of the recipe's model file, or '' when there is none."""
    path = model_path(recipe)
    if path is None or not path.is_file():
        return ""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
