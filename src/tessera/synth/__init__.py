"""Synthetic training data for tessera's bundled model (see docs/sections/synth.md).

* :func:`generate` writes train/test splits (images + JSONL + meta files, official InternVL format).
* :func:`write_examples` writes the fixed example images of ``examples/`` with their questions and answers.
* :func:`text_corpus` lists every text the tasks produce; :func:`train_tokenizer` turns it into an
  InternLM2-layout tokenizer (``tessera.synth.tokenizer``).
"""

from .corpus import text_corpus
from .examples import write_examples
from .generate import SynthConfig, generate, make_sample
from .tokenizer import train_tokenizer
from .vocab import SYSTEM_MESSAGE, TASKS

__all__ = [
    "SYSTEM_MESSAGE",
    "TASKS",
    "SynthConfig",
    "generate",
    "make_sample",
    "text_corpus",
    "train_tokenizer",
    "write_examples",
]
