"""Do a checkpoint's image tokens carry a shape's kind? A linear probe on the vision side, beside random weights.

    python benchmarks/probe_features.py [CHECKPOINT] [--task kind|color|position|cell-color|cell-kind]
                                         [--squash] [--scale 2] [--scenes square|any]

Draws single-shape tiles as ``benchmarks/learnability.py`` does (fresh, seeded; ``--scenes``: one-shape scenes
of ``tessera.synth``, placed anywhere in their cell, as one tile shows them), runs them through the vision
encoder, pixel shuffle and projector (``extract_feature``: [n, 16, hidden] tokens per 112 px tile), and fits a
linear classifier (softmax regression on the flattened, standardised tokens) on ``--n-train`` tiles, scored on
``--n-test`` others. ``--task cell-color`` / ``cell-kind`` probe full scenes of 1-6 shapes (every aspect ratio,
one tile) for what is in each of the nine cells (empty or a colour / kind: nine 7- or 5-way heads), scored on
the occupied cells: is "the colour in the top left" in the tokens when a colour-by-place question is asked?
The same for a randomly initialised model of the same config, as a baseline. High
held-out accuracy means the answer is in the tokens and whatever gets it wrong is downstream (the LLM reading
them); chance means the vision side never encoded it.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import tessera
from tessera.models.internvl import InternVLChatModel
from tessera.preprocess import dynamic_tiles, to_pixel_values
from tessera.synth import shapes
from tessera.synth import vocab as V
from tessera.train.model_setup import init_weights

_spec = importlib.util.spec_from_file_location("learnability", Path(__file__).with_name("learnability.py"))
learnability = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(learnability)


def scene_tile(rng: random.Random, square: bool) -> tuple[np.ndarray, str, str, int]:
    """A one-shape scene of ``tessera.synth.shapes`` as one 112 px tile shows it (the processor's own resize):
    (pixels [112, 112, 3] uint8, colour, kind, cell). ``square``: only square canvases (no squeezing)."""
    while True:
        image, (shape,) = shapes.draw_scene(rng, 112, max_shapes=1)
        if not square or image.width == image.height:
            break
    tile = dynamic_tiles(image, max_tiles=1, image_size=112)[0]
    return tile, shape.color, shape.kind, shape.cell


def cell_tile(rng: random.Random, what: str) -> tuple[np.ndarray, list[int]]:
    """A full synthetic scene (1-6 shapes, any aspect ratio) as one 112 px tile shows it, with what is in each
    cell: (pixels [112, 112, 3] uint8, labels [9]: 0 empty, else 1 + the colour's or kind's index)."""
    image, scene = shapes.draw_scene(rng, 112)
    labels = [0] * 9
    for shape in scene:
        labels[shape.cell] = 1 + (list(V.COLORS).index(shape.color) if what == "color" else V.SHAPES.index(shape.kind))
    return dynamic_tiles(image, max_tiles=1, image_size=112)[0], labels


def features(model: InternVLChatModel, task: str, n: int, seed: int, scale: float, squash: bool,
             scenes: str | None = None, batch: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens [n, 16 * hidden], labels [n], or [n, 9] for the cell tasks) for ``n`` fresh tiles drawn with
    ``seed``: the benchmark's centred shapes, with ``scenes`` ("square" or "any" canvas) one-shape synthetic
    scenes, or for ``cell-color`` / ``cell-kind`` full scenes."""
    rng = random.Random(seed)
    xs, ys = [], []
    for start in range(0, n, batch):
        if task.startswith("cell-"):
            tiles, labels = zip(*(cell_tile(rng, task.removeprefix("cell-")) for _ in range(min(batch, n - start))))
        else:
            if scenes:
                draws = [scene_tile(rng, scenes == "square") for _ in range(min(batch, n - start))]
            else:
                draws = [learnability.draw(rng, task, scale, squash) for _ in range(min(batch, n - start))]
            tiles, colors, kinds, cells = zip(*draws)
            labels = {"kind": [V.SHAPES.index(k) for k in kinds], "position": list(cells),
                      "color": [learnability.COLORS.index(c) for c in colors]}[task]
        pixels = to_pixel_values(torch.from_numpy(np.stack(tiles)), dtype=torch.float32)
        with torch.no_grad():
            xs.append(model.extract_feature(pixels).flatten(1))
        ys += labels
    return torch.cat(xs), torch.tensor(ys)


def probe(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], classes: int,
          steps: int = 300, l2: float = 1e-3) -> float:
    """Held-out accuracy of a softmax regression fitted (Adam, ``steps`` full-batch steps) on ``train``.

    Labels [n] fit one head; labels [n, heads] fit one head per column, scored where the label is not 0 (the
    occupied cells: an empty cell is the easy majority)."""
    (x, y), (xt, yt) = train, test
    heads = y.shape[1] if y.dim() == 2 else 1
    mean, std = x.mean(0), x.std(0) + 1e-5
    x, xt = (x - mean) / std, (xt - mean) / std
    w = torch.zeros(x.shape[1], heads * classes, requires_grad=True)
    b = torch.zeros(heads * classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=1e-3)
    for _ in range(steps):
        logits = (x @ w + b).view(-1, classes)
        loss = F.cross_entropy(logits, y.reshape(-1)) + l2 * w.square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        right = (xt @ w + b).view(*yt.shape, classes).argmax(-1) == yt
        return (right[yt > 0] if heads > 1 else right).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", default=None, help="default: the bundled model")
    ap.add_argument("--task", choices=("kind", "color", "position", "cell-color", "cell-kind"), default="kind")
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=600)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--squash", action="store_true", help="scene-shaped canvases squeezed into the tile")
    ap.add_argument("--scenes", choices=("square", "any"),
                    help="one-shape synthetic scenes (placed anywhere in their cell) on square or any canvases, "
                         "instead of the benchmark's centred shapes")
    ap.add_argument("--steps", type=int, default=300, help="optimiser steps of the probe")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    trained = tessera.load(args.checkpoint, device="cpu", dtype="float32").model
    torch.manual_seed(0)
    fresh = InternVLChatModel(trained.config)
    init_weights(fresh, 0.02)
    classes = {"kind": len(V.SHAPES), "color": len(learnability.COLORS), "position": 9,
               "cell-color": 1 + len(V.COLORS), "cell-kind": 1 + len(V.SHAPES)}[args.task]
    setting = (f", shapes x{args.scale:g}" if args.scale != 1 else "") + (", squashed" if args.squash else "")
    setting += f", one-shape scenes ({args.scenes} canvases)" if args.scenes else ""
    chance = 1 / classes
    if args.task.startswith("cell-"):  # scored on occupied cells: "empty" is never the answer
        setting, chance = ", full scenes at one tile, scored on the occupied cells", 1 / (classes - 1)
    print(f"linear probe for the {args.task} (chance {chance:.0%}){setting}: {args.n_train} tiles to fit, "
          f"{args.n_test} held out")
    print("| weights | held-out accuracy |")
    print("|---|---:|")
    for name, model in (("trained", trained), ("random", fresh)):
        model.eval()
        data = [features(model, args.task, n, seed, args.scale, args.squash, args.scenes)
                for n, seed in ((args.n_train, 1), (args.n_test, 2))]
        print(f"| {name} | {probe(*data, classes, args.steps):.1%} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
