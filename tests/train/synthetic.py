"""Tiny synthetic training data for the training tests: coloured squares on white PNGs + JSONL + meta."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 60, 220), "yellow": (230, 210, 20)}
QUESTION = "What colour is the square?"


def square_image(colour: str, size: tuple[int, int] = (56, 56), seed: int = 0) -> Image.Image:
    """A white canvas with a filled square of ``colour`` at a seeded position."""
    w, h = size
    arr = np.full((h, w, 3), 255, np.uint8)
    rng = np.random.default_rng(seed)
    side = max(8, min(w, h) // 2)
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    arr[y:y + side, x:x + side] = COLOURS[colour]
    return Image.fromarray(arr)


def write_dataset(
    root: Path,
    n: int = 8,
    *,
    size: tuple[int, int] = (56, 56),
    text_only: int = 0,
    broken: bool = False,
    extra_lines: list[str] = (),
    data_augment: bool = False,
    repeat_time: float = 1,
    name: str = "squares",
) -> Path:
    """``root/images/*.png``, ``root/{name}.jsonl`` and ``root/meta.json``; returns the meta path.

    Samples cycle through the colours ("What colour is the square?" -> "red"); ``text_only`` adds
    text-only samples; ``broken`` adds a missing image, an undecodable image and a malformed line.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    lines = []
    for i in range(n):
        colour = names[i % len(names)]
        square_image(colour, size, seed=i).save(root / "images" / f"{i}.png")
        lines.append({"id": i, "image": f"images/{i}.png", "conversations": [
            {"from": "human", "value": f"<image>\n{QUESTION}"}, {"from": "gpt", "value": colour}]})
    for k in range(text_only):
        lines.append({"id": n + k, "conversations": [
            {"from": "human", "value": f"Say {names[k % 4]}."}, {"from": "gpt", "value": names[k % 4]}]})
    text = [json.dumps(x) for x in lines]
    if broken:
        (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
        text.append(json.dumps({"image": "images/missing.png", "conversations": [
            {"from": "human", "value": QUESTION}, {"from": "gpt", "value": "red"}]}))
        text.append(json.dumps({"image": "images/broken.png", "conversations": [
            {"from": "human", "value": QUESTION}, {"from": "gpt", "value": "red"}]}))
        text.append("{this is not json")
    text += list(extra_lines)
    (root / f"{name}.jsonl").write_text("\n".join(text) + "\n")
    meta = {name: {"root": str(root), "annotation": f"{name}.jsonl", "data_augment": data_augment,
                   "repeat_time": repeat_time, "length": len(text)}}
    (root / "meta.json").write_text(json.dumps(meta))
    return root / "meta.json"


def tiny_recipe(meta: Path, output_dir: Path, *, tokenizer_dir: Path, preset: str = "tiny-internlm2", **sections) -> dict:
    """A recipe dict for fast CPU runs: tiny preset from scratch, short system message, one thread.
    ``sections`` = {"optim": {...}, ...} merged over the defaults."""
    recipe = {
        "model": {"config": preset, "tokenizer_path": str(tokenizer_dir), "grad_checkpoint": False,
                  "system_message": "Answer."},
        "data": {"meta_path": str(meta), "max_seq_length": 256, "num_workers": 0},
        "optim": {"learning_rate": 3e-3, "weight_decay": 0.0, "warmup_steps": 2, "lr_scheduler": "constant",
                  "max_steps": 6, "per_device_batch_size": 4},
        "run": {"output_dir": str(output_dir), "save_steps": 0, "save_dtype": "float32", "progress": False,
                "plot": False, "threads": 1, "device": "cpu"},
    }
    for name, values in sections.items():
        recipe.setdefault(name, {}).update(values)
    return recipe
