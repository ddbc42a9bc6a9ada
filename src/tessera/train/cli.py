"""Train or fine-tune an InternVL 1.5 model from a YAML recipe (``tessera train RECIPE [key=value ...]``).

``register(subparsers)`` adds the ``train`` sub-command to tessera's CLI; ``run(args)`` executes it and
returns the exit status. ``python -m tessera.train`` uses the same parser (that is the form to give
``torchrun``: ``torchrun --nproc_per_node 8 -m tessera.train RECIPE ...``).
"""

from __future__ import annotations

import argparse
import logging
import sys

DESCRIPTION = "Train or fine-tune an InternVL 1.5 model from a YAML recipe (bundled name or path)."
EPILOG = """examples:
  tessera train mini-internvl-chat-2b-v1-5-finetune data.meta_path=meta.json run.output_dir=runs/ft
  tessera train my_recipe.yaml learning_rate=1e-5 max_steps=100 --resume
  torchrun --nproc_per_node 8 -m tessera.train internvl-chat-v1-5-finetune data.meta_path=meta.json
  tessera train --list
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", help="recipe YAML path or bundled recipe name (see --list)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recipe overrides, e.g. optim.learning_rate=1e-4 or max_steps=100")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in run.output_dir")
    parser.add_argument("--output-dir", help="same as run.output_dir=...")
    parser.add_argument("--list", action="store_true", help="list the bundled recipes and exit")
    parser.add_argument("--print-recipe", action="store_true", help="print the resolved recipe and exit")


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train", help="train or fine-tune a model from a recipe", description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from .config import RecipeError, TrainConfig, list_recipes

    if args.list:
        for name in list_recipes():
            print(name)
        return 0
    if not args.recipe:
        print("tessera train: give a recipe (YAML path or bundled name; see --list)", file=sys.stderr)
        return 2
    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"run.output_dir={args.output_dir}")
    if args.resume:
        overrides.append("run.resume=true")
    try:
        cfg = TrainConfig.from_yaml(args.recipe, overrides)
    except RecipeError as exc:
        print(f"tessera train: {exc}", file=sys.stderr)
        return 2
    if args.print_recipe:
        print(cfg.to_yaml(), end="")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from .data import DataError
    from .engine import run_training

    try:
        run_training(cfg)
    except (RecipeError, DataError) as exc:
        print(f"tessera train: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tessera.train", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
