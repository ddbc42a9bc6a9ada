"""A deterministic stand-in for tessera's VLM, for evaluation tests (no weights, instant answers).

It decodes every image it is given (path, bytes, base64 or PIL), so a reader that hands over a broken image
source fails the test, and records each call.
"""

from __future__ import annotations

import base64
import io
import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

HASH_ANSWERS = ("Yes", "No", "A", "B", "2", "stop", "The answer is cat")


def open_image(source) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        return Image.open(io.BytesIO(source))
    if isinstance(source, (str, Path)) and Path(source).is_file():
        return Image.open(source)
    return Image.open(io.BytesIO(base64.b64decode(source, validate=True)))


def hash_answer(question: str) -> str:
    return HASH_ANSWERS[zlib.crc32(question.encode("utf-8")) % len(HASH_ANSWERS)]


class FakeVLM:
    """``answer(question, n_images) -> str``; default: a fixed answer chosen by a hash of the question."""

    def __init__(self, answer: Callable[[str, int], str] | None = None, max_dynamic_patch: int = 12,
                 fail_after: int | None = None, with_prepare: bool = True):
        self.answer = answer or (lambda q, n: hash_answer(q))
        self.config = SimpleNamespace(max_dynamic_patch=max_dynamic_patch, name_or_path="fake")
        self.calls: list[dict] = []
        self.fail_after = fail_after
        if not with_prepare:
            self.prepare_images = None

    def prepare_images(self, images, max_tiles=None):
        import torch

        for image in images:
            assert open_image(image).size[0] > 0
        return torch.zeros(len(images), 3, 2, 2), [1] * len(images)

    def batch_chat(self, questions, images=None, *, pixel_values=None, num_patches_list=None, max_tiles=None,
                   max_new_tokens=1024, temperature=0.0):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        assert temperature == 0.0 and max_tiles is not None and max_new_tokens > 0
        if pixel_values is not None:
            assert images is None and sum(num_patches_list) == pixel_values.shape[0]
            counts = list(num_patches_list)
        else:
            assert images is None or len(images) == len(questions)
            counts = []
            for entry in images or [None] * len(questions):
                entry = [] if entry is None else entry
                for image in entry:
                    assert open_image(image).size[0] > 0
                counts.append(len(entry))
        self.calls.append({"questions": list(questions), "images": counts, "max_tiles": max_tiles,
                           "max_new_tokens": max_new_tokens, "merged": pixel_values is not None})
        return [self.answer(q, n) for q, n in zip(questions, counts)]

    def chat(self, question, images=None, **kwargs):
        return self.batch_chat([question], [images], **kwargs)[0]


def make(model, device=None, dtype=None):
    """Factory for ``--vlm-factory eval_fakes:make`` (subprocess tests). With ``EVAL_FAKE_LOG=<dir>`` set,
    each process appends the questions it answers to ``<dir>/rank<RANK>.txt``."""
    log_dir = os.environ.get("EVAL_FAKE_LOG")
    if not log_dir:
        return FakeVLM()
    path = Path(log_dir) / f"rank{os.environ.get('RANK', '0')}.txt"

    def answer(question: str, n_images: int) -> str:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(question) + "\n")
        return hash_answer(question)

    return FakeVLM(answer)
