"""How much the projected image features of a checkpoint vary: the check for the collapse seen while training
the bundled model (every image mapped to nearly the same vectors, so the LLM can only learn answer priors).

    python benchmarks/feature_spread.py CHECKPOINT DATA_DIR [--n 64]

DATA_DIR is a ``tessera.synth`` split (``test.jsonl`` + ``images/``). Each image is resized to one tile; the
script prints, for the ViT output (``vit``) and the ``mlp1`` output (``mlp1``): the rms, the spread around the
mean vector, the spread across the tokens of one image (``tok``) and across images (``img``, mean-pooled).
A healthy model has spreads that are a large share of the rms (the shipped tessera-tiny: ``mlp1`` 42 %);
a collapsed one a few percent.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import tessera
from tessera.preprocess import to_pixel_values


def spread(x: torch.Tensor) -> dict[str, float]:
    """x [images, tokens, channels] -> rms and spreads."""
    x = x.float()
    total = (x - x.mean((0, 1), keepdim=True)).pow(2).mean().sqrt()
    tok = (x - x.mean(1, keepdim=True)).pow(2).mean().sqrt()
    img = (x.mean(1) - x.mean((0, 1))).pow(2).mean().sqrt()
    return {"rms": float(x.pow(2).mean().sqrt()), "spread": float(total), "tok": float(tok), "img": float(img)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("data", type=Path, help="a tessera.synth split directory (test.jsonl + images/)")
    ap.add_argument("--n", type=int, default=64, help="images (shape tasks only)")
    args = ap.parse_args()
    vlm = tessera.load(args.checkpoint, device="cpu", dtype="float32")
    size = vlm.config.image_size
    records = [json.loads(line) for line in (args.data / "test.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in records if r["task"] in ("count", "color", "shape", "position")][: args.n]
    tiles = np.stack([
        np.asarray(Image.open(args.data / r["image"]).convert("RGB").resize((size, size), Image.BICUBIC))
        for r in records
    ])
    pixels = to_pixel_values(tiles)
    with torch.no_grad():
        vit = vlm.model.vision_model(pixels)[:, 1:]
        mlp1 = vlm.model.extract_feature(pixels)
    for name, x in (("vit", vit), ("mlp1", mlp1)):
        s = spread(x)
        print(f"{name:5s} rms {s['rms']:.4f}  spread {s['spread']:.4f} ({s['spread'] / s['rms']:.0%} of rms)  "
              f"tok {s['tok']:.4f}  img {s['img']:.4f}")


if __name__ == "__main__":
    main()
