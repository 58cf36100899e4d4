"""One method's runs on consecutive seeds of one case: how recipe rules are measured on training seeds.

`sorter bench impurity` runs the odd evaluation seeds only, so that nothing is tuned on them. A recipe
rule (a taught guard, a feature-contrast floor, a push mode) is decided on the even training seeds
instead: run this once on the recipe and once on a copy with the rule changed (kept beside it in
`recipes/`, so its relative model paths still resolve), and compare the totals. It prints one line per
run and a total line; the figures in the appearance model cards and the README's training-seed
comparisons come from it.

    python benchmarks/seed_sweep.py recipes/mushrooms-stones.yaml random --first 2 --runs 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sorter.bench import buildable_seeds, contender, run_episode
from sorter.cell.sim.cell import SimCell
from sorter.perception.attention import load_attender
from sorter.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", type=Path)
    ap.add_argument("case", help="random, challenging or invisible (any scenario of the recipe)")
    ap.add_argument("--first", type=int, default=2, help="first seed; every second one from it (default 2)")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--method", default="ours")
    ap.add_argument("--budget", type=int, help="actions per run (default: the recipe's batch limit)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe)
    cell, attender = SimCell(recipe), load_attender(recipe)
    who = contender(args.method, recipe, REPO / "models")
    budget = args.budget or recipe.loop.max_actions_per_batch
    runs = [run_episode(cell, attender, who, args.case, s, budget)
            for s in buildable_seeds(cell, args.case, args.first, args.runs)]
    for e in runs:
        print(f"seed {e.seed}: {e.picked} of {e.impurities} in {e.actions} actions, {e.grasp_hits} of "
              f"{e.grasps} grasps, {e.false_picks} false picks, ended: {e.ended}")
    total = {k: sum(getattr(e, k) for e in runs)
             for k in ("impurities", "picked", "actions", "grasps", "grasp_hits", "false_picks")}
    print(f"{args.method} on {args.case}, {len(runs)} seeds from {args.first}: {total['picked']} of "
          f"{total['impurities']} impurities in {total['actions']} actions, {total['grasp_hits']} of "
          f"{total['grasps']} grasps, {total['false_picks']} false picks")


if __name__ == "__main__":
    main()
