"""Shared test helpers: where the conformance fixtures live (``../shared/conformance`` from the repo root)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO.parent / "shared" / "conformance"
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
