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
