"""Training and fine-tuning of InternVL 1.5 models (see docs/sections/train.md).

* :class:`TrainConfig` - a recipe (YAML <-> dataclasses); bundled recipes in ``tessera/recipes``.
* :func:`run_training` - run one (single process, or under ``torchrun`` for DDP / FSDP2); returns the
  final official-layout checkpoint directory.
* ``tessera train RECIPE.yaml [key=value ...]`` / ``python -m tessera.train ...`` - the same from a shell.
"""

from .config import DataArgs, LoraArgs, ModelArgs, OptimArgs, RecipeError, RunArgs, TrainConfig, list_recipes
from .engine import TrainResult, run_training, train

__all__ = [
    "DataArgs",
    "LoraArgs",
    "ModelArgs",
    "OptimArgs",
    "RecipeError",
    "RunArgs",
    "TrainConfig",
    "TrainResult",
    "list_recipes",
    "run_training",
    "train",
]
