"""Synthetic training data for tessera's bundled model (see docs/sections/synth.md).

* :func:`generate` writes train/test splits (images + JSONL + meta files, official InternVL format).
* :func:`write_examples` writes the fixed example images of ``examples/`` with their questions and answers.
* :func:`text_corpus` lists every text the tasks produce; :func:`train_tokenizer` turns it into an
  InternLM2-layout tokenizer (``tessera.synth.tokenizer``).

Names are imported lazily, so that ``python -m tessera.synth.fonts`` runs without importing the rest.
"""

from __future__ import annotations

import importlib

_API = {
    "SYSTEM_MESSAGE": "vocab",
    "TASKS": "vocab",
    "SynthConfig": "dataset",
    "generate": "dataset",
    "make_sample": "dataset",
    "text_corpus": "corpus",
    "train_tokenizer": "tokenizer",
    "write_examples": "examples",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
