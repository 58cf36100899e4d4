"""`sorter recipe check|schema`: validate recipe files and export the JSON Schema (no torch, no mujoco)."""

from __future__ import annotations

import argparse
import sys

from sorter.recipe import RecipeError, load_recipe, recipe_json_schema


def register(groups: dict) -> None:
    check = groups["recipe"].add_parser("check", help="validate recipe files; exit 1 when any has errors")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=check_files)
    schema = groups["recipe"].add_parser("schema", help="print the recipe JSON Schema")
    schema.set_defaults(handler=print_schema)


def check_files(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.files:
        try:
            recipe = load_recipe(name)
        except RecipeError as exc:
            failed += 1
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            continue
        print(f"{name}: ok ({recipe.product.name}, policy {recipe.policy.kind}, "
              f"{'simulated' if recipe.is_simulated else 'hardware'} cell)")
    return 1 if failed else 0


def print_schema(args: argparse.Namespace) -> int:
    print(recipe_json_schema())
    return 0
