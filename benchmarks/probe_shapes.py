"""Accuracy of a checkpoint on freshly drawn shape scenes: a quick check during a bundled-model build.

    python benchmarks/probe_shapes.py CHECKPOINT [--n 40] [--max-shapes 1] [--max-tiles 1]

Draws ``n`` scenes with ``tessera.synth.shapes`` (seeded, not from any training split) and asks one colour,
one position and one shape question about each, as ``tessera eval --bench synth`` would score them (exact
match). With ``--max-shapes 1`` every question is about the one shape in the scene: the first thing a model
trained from scratch has to learn. Chance: colour 1/6, position 1/9, shape 1/4.
"""

from __future__ import annotations

import argparse
import random

import tessera
from tessera.synth import dataset, shapes

TASKS = ("color", "position", "shape")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--n", type=int, default=40, help="scenes (one question per task each)")
    ap.add_argument("--max-shapes", type=int, default=1)
    ap.add_argument("--max-tiles", type=int, default=1)
    ap.add_argument("--seed", type=int, default=999)
    args = ap.parse_args(argv)
    vlm = tessera.load(args.checkpoint, device="cpu", dtype="float32")
    right = dict.fromkeys(TASKS, 0)
    for i in range(args.n):
        rng = dataset.sample_rng(args.seed, "probe", i)
        image, scene = shapes.draw_scene(rng, vlm.config.image_size, max_shapes=args.max_shapes)
        for task in TASKS:
            question, answer, _ = shapes.ask(random.Random(i), scene, task)
            right[task] += vlm.chat(question, image, max_tiles=args.max_tiles, max_new_tokens=8) == answer
    print(" ".join(f"{task} {right[task] / args.n:.0%}" for task in TASKS), f"({args.n} scenes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
