"""Can the tessera-tiny architecture, from random weights, learn where one shape is, its colour or its kind?

    python benchmarks/learnability.py [--lrs 1e-3,3e-4,1.5e-4] [--task position|color|kind] [--steps 200]
                                      [--scale 2] [--squash] [--init CHECKPOINT]

The smallest vision task of the bundled model, stripped of everything else: one circle (one of the six
synthetic colours) in one of the nine cells of a 112 px tile, 16 image tokens after a few text tokens, and
the answer read off the last position as a 9-way (position) or 6-way (colour) classification over the LLM's
vocabulary; ``--task kind`` draws one of the four kinds instead of a circle and asks which (4-way).
``--scale 2`` draws the shape twice as large; ``--squash`` draws it on a canvas of one of the scenes' aspect
ratios squeezed into the tile, as one tile shows a scene (a circle becomes an ellipse); ``--init`` starts from
a trained checkpoint instead of random weights and scores its own answer words. Every step draws a fresh
batch, so the accuracy printed for a step (measured before its update) is held-out accuracy. Each learning
rate starts from the same weights (random: ``init_weights``, std 0.02, as ``tessera train`` does from
scratch) and trains with AdamW (weight decay 0.1), side by side in one run.

Why it exists: every bundled-model build so far trained at 1e-3 (stage 2 at 7e-4) and never got past the
answer priors on full scenes. This check shows that at 1e-3 the architecture does not learn even this task
in 200 steps of 32, while at 1.5e-4 - 3e-4 it does (numbers in the README's bundled-model section).
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

import tessera
from tessera.models.internvl import InternVLChatModel
from tessera.preprocess import to_pixel_values
from tessera.synth import vocab as V
from tessera.synth.shapes import ASPECTS, draw_shape
from tessera.train.model_setup import chat_config, init_weights

COLORS = list(V.COLORS)
CELL = 112 / 3


def draw(rng: random.Random, task: str, scale: float = 1.0, squash: bool = False) -> tuple[np.ndarray, str, str, int]:
    """One 112x112 RGB tile with one shape: (pixels [112, 112, 3] uint8, colour, kind, cell 0..8).

    position/color: a circle of a random colour in a random cell; kind: a random kind, colour and cell.
    ``scale`` > 1 draws the shape that many times larger (as a scene's shape looks at 2x2 or 3x3 tiles), moved
    inwards just enough to stay inside the tile. ``squash`` draws on a canvas of one of the scenes' aspect ratios
    (sized against its shorter side, as scenes are) and resizes it to the tile, as one tile shows a scene."""
    aw, ah = rng.choice(ASPECTS) if squash else (1, 1)
    width, height = (round(112 * a / min(aw, ah)) for a in (aw, ah))
    image = Image.new("RGB", (width, height), (245, 245, 240))
    color, cell = rng.choice(COLORS), rng.randrange(9)
    kind = rng.choice(V.SHAPES) if task == "kind" else "circle"
    row, col = divmod(cell, 3)
    size = rng.uniform(0.45, 0.75) * CELL * scale
    cx = min(max((col + 0.5) * width / 3, size / 2), width - size / 2)
    cy = min(max((row + 0.5) * height / 3, size / 2), height - size / 2)
    draw_shape(ImageDraw.Draw(image), kind, cx, cy, size, V.COLORS[color])
    if squash:
        image = image.resize((112, 112), Image.LANCZOS)
    return np.asarray(image), color, kind, cell


def run(lr: float, task: str, steps: int, batch: int, prefix: int, seed: int, every: int,
        scale: float = 1.0, squash: bool = False, init: str | None = None) -> list[tuple[int, float, float]]:
    """Train one model at ``lr`` (fresh, or a copy of checkpoint ``init``); returns (step, loss, held-out batch
    accuracy) every ``every`` steps."""
    torch.manual_seed(seed)
    if init is None:
        config = chat_config("tessera-tiny")
        model = InternVLChatModel(config)
        init_weights(model, 0.02)
        answers = [100 + k for k in range(9)]  # any fixed ids: a fresh model has no words yet
    else:
        vlm = tessera.load(init, device="cpu", dtype="float32")
        model, config = vlm.model.train(), vlm.model.config
        # A trained model already answers with these words: score it on their first tokens.
        words = {"position": V.POSITIONS, "color": COLORS, "kind": V.SHAPES}[task]
        answers = [vlm.tokenizer.encode(w, add_special_tokens=False)[0] for w in words]
        if len(set(answers)) < len(words):
            raise ValueError(f"--init scores first tokens, and the {task} answers share some ({answers}): use --task "
                             "color or kind")
    vocab = config.llm_config.vocab_size
    model.img_context_token_id = vocab - 1
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    rng = random.Random(seed)
    text = [1 + i % 40 for i in range(prefix)]  # stands in for the system prompt and template
    ids = torch.tensor([text + [vocab - 1] * model.num_image_token + [50, 51, 52]] * batch)
    positions = torch.arange(ids.shape[1])[None].expand(batch, -1)
    curve = []
    for step in range(1, steps + 1):
        tiles, colors, kinds, cells = zip(*(draw(rng, task, scale, squash) for _ in range(batch)))
        labels = {"position": cells, "color": [COLORS.index(c) for c in colors],
                  "kind": [V.SHAPES.index(k) for k in kinds]}[task]
        target = torch.tensor([answers[k] for k in labels])
        pixels = to_pixel_values(torch.from_numpy(np.stack(tiles)), dtype=torch.float32)
        hidden = model.language_model(model.embed(ids, pixel_values=pixels), positions)
        logits = model.language_model.logits(hidden[:, -1])  # [batch, vocab]
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            acc = (logits.argmax(-1) == target).float().mean().item()
            curve.append((step, loss.item(), acc))
    return curve


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lrs", default="1e-3,3e-4,1.5e-4", help="comma-separated learning rates (the first: baseline)")
    ap.add_argument("--task", choices=("position", "color", "kind"), default="position")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prefix", type=int, default=5, help="text tokens before the image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=50, help="report every N steps")
    ap.add_argument("--scale", type=float, default=1.0, help="shape size multiplier (2: as at 2x2 tiles)")
    ap.add_argument("--squash", action="store_true", help="squeeze a scene-shaped canvas into the tile")
    ap.add_argument("--init", help="start from this checkpoint instead of random weights")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    chance = 1 / {"position": 9, "color": len(COLORS), "kind": len(V.SHAPES)}[args.task]
    setting = (f", shapes x{args.scale:g}" if args.scale != 1 else "") + (", squashed" if args.squash else "")
    setting += f", from {args.init}" if args.init else ", from random weights"
    print(f"task {args.task} (chance {chance:.0%}){setting}, {args.steps} steps of {args.batch}, fresh batches")
    print("| lr | step | loss | held-out batch accuracy | seconds |")
    print("|---:|---:|---:|---:|---:|")
    for lr in (float(x) for x in args.lrs.split(",")):
        start = time.perf_counter()
        for step, loss, acc in run(lr, args.task, args.steps, args.batch, args.prefix, args.seed, args.every,
                                   args.scale, args.squash, args.init):
            print(f"| {lr:g} | {step} | {loss:.3f} | {acc:.0%} | {time.perf_counter() - start:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
