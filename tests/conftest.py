"""Shared test helpers: where the conformance fixtures live (``../shared/conformance`` from the repo root,
or ``$TESSERA_CONFORMANCE``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# TESSERA_CONFORMANCE points elsewhere (the lent GPU machine gets a carried copy inside the checkout).
CONFORMANCE = Path(os.environ.get("TESSERA_CONFORMANCE", REPO.parent / "shared" / "conformance"))
MODEL_NAMES = (
    "internvl-chat-v1-5-tiny",
    "mini-internvl-chat-2b-v1-5-tiny",
    "mini-internvl-chat-4b-v1-5-tiny",
)


def conformance_path(*parts: str) -> Path:
    """Path inside the conformance set; fails (never skips) when the fixtures are missing."""
    path = CONFORMANCE.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"conformance fixture missing: {path} (expected ../shared/conformance beside the repo)")
    return path


def load_fixture_model(name: str):
    """(vlm in float32, reference.json, reference tensors) of one conformance checkpoint."""
    import json

    from safetensors.torch import load_file

    import tessera

    root = conformance_path("models", name)
    vlm = tessera.load(root, dtype="float32")
    ref = json.loads((root / "reference.json").read_text())
    return vlm, ref, load_file(str(root / "reference.safetensors"))


@pytest.fixture(scope="module", params=MODEL_NAMES)
def fixture(request):
    """Each conformance checkpoint in turn: ``(vlm, reference.json, reference tensors)``."""
    return load_fixture_model(request.param)


def random_synth_checkpoint(path: Path, pieces: int = 512) -> Path:
    """A random-weight ``tessera-tiny`` checkpoint at ``path`` with a freshly trained ``pieces``-piece
    ``tessera.synth`` tokenizer (its two-word places are two tokens each): the starting point the bundled model's
    tools are tested on without depending on the shipped model's tokenizer."""
    import torch

    from tessera.checkpoint import save_model
    from tessera.models.internvl import InternVLChatModel
    from tessera.synth import text_corpus, train_tokenizer
    from tessera.train.model_setup import chat_config

    config = chat_config("tessera-tiny")
    config.llm_config.vocab_size = pieces + 9
    torch.manual_seed(0)
    ckpt = save_model(InternVLChatModel(config), path, dtype=torch.float32)
    train_tokenizer(ckpt, text_corpus(), vocab_size=pieces)
    return ckpt
