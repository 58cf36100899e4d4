"""`sorter train`, `sorter bench impurity` and `sorter bench policy`: learning and measuring the agent.

Torch, MuJoCo and perception are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sorter.errors import SorterError

METHOD_CHOICES = ("ours", "no-tsd", "no-t", "vpg")


def register(groups: dict) -> None:
    _register_train(groups[""])
    bench = groups["bench"].add_parser(
        "impurity", help="paper 2's impurity suite: methods x random/challenging/invisible on the sim cell")
    bench.add_argument("--recipe", required=True, metavar="FILE")
    bench.add_argument("--methods", default="ours,no-tsd,no-oi,no-t,vpg,s-vpg,heuristic",
                       help="comma-separated (default: all of ours,no-tsd,no-oi,no-t,vpg,s-vpg,heuristic)")
    bench.add_argument("--runs", type=_positive_int, default=20, help="runs per case (default 20)")
    bench.add_argument("--seed", type=int, default=1, help="first evaluation seed, odd (default 1)")
    bench.add_argument("--cases", default="random,challenging,invisible", help="comma-separated cases")
    bench.add_argument("--models", default="models", metavar="DIR",
                       help="folder with tcdd-<method>.safetensors (default models/)")
    bench.add_argument("--model", metavar="FILE", help="weights for ours/no-oi (default: the recipe's "
                                                        "policy.model when it is a tcdd policy)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument("--threads", type=_positive_int, default=1, help="torch threads (default 1)")
    bench.add_argument("--card", metavar="PATH", help="create or update the model card of the ours model "
                                                      "with this recipe's table")
    bench.set_defaults(handler=bench_impurity)
    speed = groups["bench"].add_parser("policy", help="forward-pass time of the Q network (16 rotations, "
                                                      "both heads)")
    speed.add_argument("--threads", type=_positive_int, default=2, help="torch threads (default 2)")
    speed.add_argument("--repeats", type=_positive_int, default=30)
    speed.set_defaults(handler=bench_policy)


def _register_train(top) -> None:
    train = top.add_parser("train", help="train the push-grasp agent on the simulated cell")
    train.add_argument("--recipe", required=True, metavar="FILE", action="append",
                       help="recipe to train on; repeat it to train one general model on several")
    train.add_argument("--iterations", type=_positive_int, required=True, metavar="N")
    train.add_argument("--method", choices=METHOD_CHOICES, default="ours",
                       help="what to train: ours or an ablation/baseline (default ours)")
    train.add_argument("--seed", type=int, default=0, help="training seed, even (default 0)")
    train.add_argument("--out", default=None, metavar="DIR",
                       help="run folder for checkpoint, log.csv, progress.png and model "
                            "(default runs/train-METHOD)")
    train.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    train.add_argument("--lr", type=float, default=None, help="learning rate (default: the tuned one)")
    train.add_argument("--scenarios", default=None,
                       help="training scenes as name:weight,... (default random:0.5,challenging:0.25,"
                            "invisible:0.25)")
    train.add_argument("--decay", type=_positive_int, default=None, metavar="N",
                       help="iterations over which exploration decays (default 1500)")
    train.add_argument("--search-reward", choices=("tcdd", "occlusion"), default=None,  # train.SEARCH_REWARDS
                       help="push reward while no impurity shows: tcdd (paper 2, default) or occlusion (also "
                            "0.5 when the push uncovers the hidden impurity by 0.1 occlusion, paper 1)")
    train.add_argument("--fresh-exploration", action="store_true",
                       help="with --resume: restart the exploration schedule at the checkpoint (fine-tuning "
                            "on new recipes)")
    train.add_argument("--init", default=None, metavar="MODEL",
                       help="start a new run from this model file's weights (fine-tuning with a fresh "
                            "replay buffer)")
    train.add_argument("--threads", type=_positive_int, default=1,
                       help="torch threads (default 1: on a shared 2-core machine a second thread waits "
                            "on the other users and makes every pass several times slower)")
    train.set_defaults(handler=train_command)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _scenarios(text: str | None) -> tuple[tuple[str, float], ...] | None:
    if text is None:
        return None
    out = []
    for part in text.split(","):
        name, _, weight = part.partition(":")
        try:
            out.append((name.strip(), float(weight) if weight else 1.0))
        except ValueError:
            raise SorterError(f"--scenarios: '{part}' is not name:weight (e.g. random:0.5)") from None
    return tuple(out)


def train_command(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from sorter.policy.train import Trainer, TrainSettings, checkpoint_iteration
    from sorter.recipe import load_recipe

    torch.set_num_threads(args.threads)
    recipes = [load_recipe(r) for r in args.recipe]
    for recipe in recipes:
        if not recipe.is_simulated:
            raise SorterError(f"`sorter train` runs on the simulated cell; {recipe.path} names hardware")
    settings = TrainSettings(method=args.method, iterations=args.iterations, seed=args.seed)
    if args.lr is not None:
        settings = dataclasses.replace(settings, lr=args.lr)
    scenarios = _scenarios(args.scenarios)
    if scenarios is not None:
        settings = dataclasses.replace(settings, scenarios=scenarios)
    if args.decay is not None:
        settings = dataclasses.replace(settings, decay=args.decay)
    if args.search_reward is not None:
        settings = dataclasses.replace(settings, search_reward=args.search_reward)
    out = Path(args.out or f"runs/train-{args.method}")
    if args.init is not None:
        if args.resume:
            raise SorterError("--init starts a new run from a model file; --resume continues a checkpoint; "
                              "use one of them")
        from sorter.policy.agent import file_sha256, load_model

        init = Path(args.init)
        load_model(init)  # names the file clearly when it is missing or corrupt
        settings = dataclasses.replace(settings, init=str(init), init_sha256=file_sha256(init))
    if args.fresh_exploration:
        if not args.resume:
            raise SorterError("--fresh-exploration restarts exploration of a resumed run; add --resume")
        settings = dataclasses.replace(settings, schedule_start=checkpoint_iteration(out))
    trainer = Trainer(recipes, settings, out, resume=args.resume)
    names = ", ".join(r.product.name for r in recipes)
    print(f"training '{args.method}' on {names}, seed {args.seed}, into {out}"
          + (f" (resumed at iteration {trainer.state.iteration})" if args.resume else ""), file=sys.stderr)
    model = trainer.run()
    print(f"model: {model} ({trainer.state.iteration} iterations, {trainer.state.wall / 60:.1f} min)")
    return 0


def bench_impurity(args: argparse.Namespace) -> int:
    import torch

    from sorter.bench import (
        ALL_METHODS,
        CASES,
        MODEL_PATTERN,
        bench_impurity,
        leads,
        recipe_model,
        results_json,
        write_card,
    )
    from sorter.recipe import load_recipe

    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe)
    if not recipe.is_simulated:
        raise SorterError("`sorter bench impurity` runs on the simulated cell; use a sim recipe")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise SorterError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(ALL_METHODS)}")
    cases = tuple(c.strip() for c in args.cases.split(",") if c.strip())
    bad = [c for c in cases if c not in CASES]
    if bad:
        raise SorterError(f"unknown case(s) {', '.join(bad)}; choose from {', '.join(CASES)}")
    if args.seed % 2 == 0:
        raise SorterError(f"--seed {args.seed} is even; evaluation seeds are odd")
    ours = Path(args.model) if args.model else recipe_model(recipe)

    def report(r):
        print(f"  {r.case:<12} {r.method:<10} grasp {r.grasp_success:.3f}  efficiency "
              f"{r.action_efficiency:.3f}  completed {r.completion:.2f}  false picks {r.false_picks}  "
              f"(per completion: grasp {r.grasp_success_per_completion:.3f}  efficiency "
              f"{r.action_efficiency_per_completion:.3f})", file=sys.stderr)

    results, episodes = bench_impurity(recipe, methods, args.runs, args.seed, Path(args.models), ours, cases,
                                       report)
    last = args.seed + 2 * (args.runs - 1)
    print(f"\n{recipe.product.name}: {args.runs} runs per case, seeds {args.seed}..{last}, budget "
          f"{recipe.loop.max_actions_per_batch} actions\n")
    found = leads(episodes) + leads(episodes, figures="per completion") if "ours" in methods else []
    table = _tables(results, found)
    print(table)
    if args.json:
        meta = {"recipe": recipe.product.name, "runs": args.runs, "seed": args.seed,
                "budget": recipe.loop.max_actions_per_batch}
        Path(args.json).write_text(results_json(results, episodes, meta, found), encoding="utf-8")
    if args.card:
        ours = ours or Path(args.models) / MODEL_PATTERN.format(model="ours")
        command = "sorter bench impurity " + " ".join(sys.argv[3:])
        write_card(Path(args.card), ours, recipe.product.name, table, command)
    return 0


def _tables(results, found) -> str:
    """The pooled table, paper 2's per-completion one and the leads ``found`` on each (see
    ``sorter.bench``'s module docstring for the two ways of counting)."""
    from sorter.bench import FIGURES, leads_table, markdown_table

    parts = ["Pooled over every run (every grasp and action counts):", markdown_table(results),
             "Paper 2's protocol (means per completion, over the runs that binned every impurity):",
             markdown_table(results, "per completion")]
    for figures in FIGURES:
        mine = [lead for lead in found if lead.figures == figures]
        if mine:
            parts += [f"`ours` against each method on the same seeds (differences of the {figures} figures, "
                      "paired bootstrap over the seeds):", leads_table(mine)]
    return "\n\n".join(parts)


def bench_policy(args: argparse.Namespace) -> int:
    from sorter.bench import forward_speed

    figures = forward_speed(args.repeats, args.threads)
    print(json.dumps(figures, indent=2))
    return 0
