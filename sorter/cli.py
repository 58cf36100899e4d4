"""The `sorter` command: a thin parser that hands each subcommand to its area's module.

Each module in ``COMMAND_MODULES`` exposes ``register(groups)`` and imports anything heavy (torch,
mujoco) inside its handlers, so ``sorter recipe check`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sorter.errors import SorterError

COMMAND_MODULES = (
    "sorter.commands.recipe",
    "sorter.commands.sim",
    "sorter.commands.perception",
    "sorter.commands.policy",
    "sorter.commands.run",
    "sorter.commands.devices",
)
GROUPS = {
    "recipe": "check and describe recipe files",
    "sim": "the simulated cell: snapshots and demos",
    "bench": "benchmarks that print their figures",
    "eval": "evaluations against simulator ground truth",
    "runs": "sorting runs recorded in the run log",
}


class Groups(dict):
    """Sub-parser collections by group name; ``groups['']`` holds the top-level commands."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sorter", description="Impurity-sorting robot cell.")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups = Groups({"": top})
    for name, help_text in GROUPS.items():
        sub = top.add_parser(name, help=help_text)
        groups[name] = sub.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one clear message and exit 1, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SorterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
