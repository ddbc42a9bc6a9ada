"""Can the tessera-tiny architecture, from random weights, learn where one shape is, its colour or its kind?

    python benchmarks/learnability.py [--lrs 1e-3,3e-4,1.5e-4] [--task position|color|kind|bind|find|read|read1]
                                      [--steps 200] [--scale 2] [--squash] [--init CHECKPOINT] [--pos-std 1]
                                      [--set llm_config.hidden_size=512 ...] [--cell-last 500] [--text-first 1000]
                                      [--place-words] [--ask-first]

The smallest vision task of the bundled model, stripped of everything else: one circle (one of the six
synthetic colours) in one of the nine cells of a 112 px tile, 16 image tokens after a few text tokens, and
the answer read off the last position as a 9-way (position) or 6-way (colour) classification over the LLM's
vocabulary; ``--task kind`` draws one of the four kinds instead of a circle and asks which (4-way).
``--task bind`` draws 2-6 circles of different colours in different cells and asks the colour of the one in a
given cell (a cell token before the last, or for the first ``--cell-last`` steps the last: binding a place to
what is there, 6-way; ``--task find`` the same scenes the other way round, the cell of the circle of a given
colour, 9-way, as "Where is the red circle?" asks; ``--text-first`` steps first give the scene as text, cell
and colour tokens in the image's places, as a pretrained LLM would know lookups from text; ``--place-words`` names the cell with a row
and a column token, as "top left" is two words; ``--ask-first`` puts it before the image, as a prompt that
asks first and shows the image after). ``--task read`` draws one
tile of a reading page (12 px words in the page's cell layout, one in a red box) and asks the boxed word
(32-way); ``read1`` the same with the boxed word alone on the tile.
``--scale 2`` draws the shape twice as large; ``--squash`` draws it on a canvas of one of the scenes' aspect
ratios squeezed into the tile, as one tile shows a scene (a circle becomes an ellipse); ``--init`` starts from
a trained checkpoint instead of random weights and scores its own answer words (``bind`` still asks with
new cell tokens); ``--pos-std`` draws the ViT position and class embeddings with that std (official
InternViT: 1) instead of 0.02; ``--set FIELD=VALUE`` changes the fresh model's config (a wider or deeper LLM,
e.g. ``--set llm_config.hidden_size=512``). Every step draws a fresh
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
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

import tessera
from tessera.config import ChatConfig
from tessera.models.internvl import InternVLChatModel
from tessera.preprocess import to_pixel_values
from tessera.synth import vocab as V
from tessera.synth.document import cell_layout
from tessera.synth.fonts import text_font
from tessera.synth.shapes import ASPECTS, draw_shape
from tessera.train.model_setup import chat_config, init_weights

COLORS = list(V.COLORS)
# The answers of each task, in label order.
CLASSES = {"position": V.POSITIONS, "color": COLORS, "kind": V.SHAPES, "bind": COLORS, "find": V.POSITIONS,
           "read": V.WORDS, "read1": V.WORDS}
CELL = 112 / 3


def draw(rng: random.Random, task: str, scale: float = 1.0, squash: bool = False) -> tuple[np.ndarray, str, str, int]:
    """One 112x112 RGB tile with one shape: (pixels [112, 112, 3] uint8, colour, kind, cell 0..8).

    position/color: a circle of a random colour in a random cell; kind: a random kind, colour and cell.
    ``scale`` > 1 draws the shape that many times larger (as a scene's shape looks at 2x2 or 3x3 tiles), moved
    inwards just enough to stay inside the tile. ``squash`` draws on a canvas of one of the scenes' aspect ratios
    (sized against its shorter side, as scenes are) and resizes it to the tile, as one tile shows a scene."""
    if task in ("bind", "find"):
        return draw_bind(rng)
    if task in ("read", "read1"):
        return draw_read(rng, crowded=task == "read")
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


def draw_bind(rng: random.Random) -> tuple[np.ndarray, str, str, int]:
    """One 112x112 tile with 2-6 circles of different colours in different cells: (pixels, the colour of the
    asked circle, "circle", the asked cell). The question names the cell, the answer is that circle's colour."""
    image = Image.new("RGB", (112, 112), (245, 245, 240))
    n = rng.randint(2, 6)
    cells, colors = rng.sample(range(9), n), rng.sample(COLORS, n)
    for cell, color in zip(cells, colors):
        row, col = divmod(cell, 3)
        size = rng.uniform(0.45, 0.75) * CELL
        cx = (col + 0.5) * CELL + rng.uniform(-0.5, 0.5) * (CELL - size) / 2
        cy = (row + 0.5) * CELL + rng.uniform(-0.5, 0.5) * (CELL - size) / 2
        draw_shape(ImageDraw.Draw(image), "circle", cx, cy, size, V.COLORS[color])
    k = rng.randrange(n)
    return np.asarray(image), colors[k], "circle", cells[k]


def draw_read(rng: random.Random, crowded: bool) -> tuple[np.ndarray, str, str, int]:
    """One 112x112 tile of a reading page (12 px words in the page's cell layout): (pixels, the word in the red
    box, "word", its cell). ``crowded``: every cell holds a word, as on a page; else only the boxed one."""
    width, height, corners = cell_layout(112, 12)
    image = Image.new("RGB", (112, 112), (255, 255, 255))
    canvas = ImageDraw.Draw(image)
    k = rng.randrange(len(corners))
    word = rng.choice(V.WORDS)
    for i, (x0, y0) in enumerate(corners):
        if i == k or crowded:
            text = word if i == k else rng.choice(V.WORDS)
            canvas.text((x0 + width / 2, y0 + height / 2), text, fill=(0, 0, 0), font=text_font(12), anchor="mm")
    x0, y0 = corners[k]
    canvas.rectangle((x0, y0, x0 + width - 1, y0 + height - 1), outline=V.BOX_COLORS["red"], width=2)
    return np.asarray(image), word, "word", k


def tiny_config(overrides: tuple[str, ...] = ()) -> ChatConfig:
    """The tessera-tiny config with ``FIELD=VALUE`` changes (dotted fields, e.g. ``llm_config.hidden_size=512``;
    the value takes the field's current type)."""
    config = chat_config("tessera-tiny")
    for item in overrides:
        key, _, value = item.partition("=")
        *path, name = key.split(".")
        target = config
        for part in path:
            target = getattr(target, part)
        if not hasattr(target, name):
            raise ValueError(f"--set {item}: the config has no field {key}")
        setattr(target, name, type(getattr(target, name))(value))
    return config


def run(lr: float, task: str, steps: int, batch: int, prefix: int, seed: int, every: int,
        scale: float = 1.0, squash: bool = False, init: str | None = None,
        pos_std: float | None = None, overrides: tuple[str, ...] = (),
        cell_last: int = 0, text_first: int = 0, place_words: bool = False,
        ask_first: bool = False) -> Iterator[tuple[int, float, float, float]]:
    """Train one model at ``lr`` (fresh, or a copy of checkpoint ``init``); yields (step, loss, held-out batch
    accuracy, seconds since the start) every ``every`` steps, as it goes (a long run shows its curve)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    if init is None:
        config = tiny_config(overrides)
        model = InternVLChatModel(config)
        init_weights(model, 0.02)
        if pos_std is not None:  # the official InternViT draws these with torch.randn (std 1)
            embeddings = model.vision_model.embeddings
            for p in (embeddings.position_embedding, embeddings.class_embedding):
                torch.nn.init.normal_(p, 0.0, pos_std)
        answers = [100 + k for k in range(len(CLASSES[task]))]  # any fixed ids: a fresh model has no words yet
    else:
        vlm = tessera.load(init, device="cpu", dtype="float32")
        model, config = vlm.model.train(), vlm.model.config
        # A trained model already answers with these words: score it on their first tokens.
        words = CLASSES[task]
        answers = [vlm.tokenizer.encode(w, add_special_tokens=False)[0] for w in words]
        if len(set(answers)) < len(words):
            raise ValueError(f"--init scores first tokens, and the {task} answers share some ({answers}): use --task "
                             "color or kind")
    vocab = config.llm_config.vocab_size
    places = [200 + k for k in range(9)]  # bind: one token per cell, new to a trained model too
    colour_keys = [220 + k for k in range(len(COLORS))]  # find: one token per colour
    rows, cols = [210, 211, 212], [213, 214, 215]  # bind --place-words: a row and a column token per cell
    model.img_context_token_id = vocab - 1
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    rng = random.Random(seed)
    text = [1 + i % 40 for i in range(prefix)]  # stands in for the system prompt and template
    ids = torch.tensor([text + [vocab - 1] * model.num_image_token + [50, 51, 52]] * batch)

    def ids_for(cells: tuple[int, ...], last: bool) -> torch.Tensor:  # bind: the asked cell's token, before the last
        if place_words:  # the cell as two words, row then column ("top" "left"): same length, the column last
            asked = torch.tensor([[rows[c // 3], cols[c % 3]] for c in cells])
        else:
            asked = torch.tensor([places[c] for c in cells])[:, None]
        if ask_first:  # the question before the image: the asked cell ends the text before the image tokens
            return torch.cat([ids[:, :prefix - asked.shape[1]], asked, ids[:, prefix:]], 1)
        return with_key(asked, last)

    def with_key(asked: torch.Tensor, last: bool) -> torch.Tensor:  # the asked key [batch, n]: last or before it
        keep = ids.shape[1] - asked.shape[1]
        return torch.cat([ids[:, :keep], asked], 1) if last else torch.cat([ids[:, :keep - 1], asked, ids[:, -1:]], 1)

    def text_scene() -> tuple[list[int], int, int]:  # bind as text: (16 context tokens, asked cell, its colour)
        n = rng.randint(2, 6)
        pairs = list(zip(rng.sample(range(9), n), rng.sample(range(len(COLORS)), n)))
        context = [t for cell, color in pairs for t in (places[cell], answers[color])]
        cell, color = rng.choice(pairs)
        return context + [60] * (model.num_image_token - len(context)), cell, color

    positions = torch.arange(ids.shape[1])[None].expand(batch, -1)

    def image_step(step: int) -> tuple[torch.Tensor, torch.Tensor]:  # (targets [batch], hidden states)
        tiles, colors, kinds, cells = zip(*(draw(rng, task, scale, squash) for _ in range(batch)))
        if task in ("position", "find"):
            labels = cells
        elif task == "kind":
            labels = [V.SHAPES.index(k) for k in kinds]
        else:  # the colour, or for reading the word, comes second
            labels = [CLASSES[task].index(c) for c in colors]
        target = torch.tensor([answers[k] for k in labels])
        pixels = to_pixel_values(torch.from_numpy(np.stack(tiles)), dtype=torch.float32)
        if task == "bind":
            step_ids = ids_for(cells, step <= cell_last)
        elif task == "find":
            asked = torch.tensor([colour_keys[COLORS.index(c)] for c in colors])[:, None]
            step_ids = with_key(asked, step <= cell_last)
        else:
            step_ids = ids
        return target, model.language_model(model.embed(step_ids, pixel_values=pixels), positions)

    def text_step(step: int) -> tuple[torch.Tensor, torch.Tensor]:  # bind, the scene written out in text
        contexts, cells, labels = zip(*(text_scene() for _ in range(batch)))
        step_ids = ids_for(cells, step <= cell_last)
        step_ids[:, prefix:prefix + model.num_image_token] = torch.tensor(contexts)
        return torch.tensor([answers[k] for k in labels]), model.language_model(model.embed(step_ids), positions)

    for step in range(1, steps + 1):
        target, hidden = (text_step if task == "bind" and step <= text_first else image_step)(step)
        logits = model.language_model.logits(hidden[:, -1])  # [batch, vocab]
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            acc = (logits.argmax(-1) == target).float().mean().item()
            yield step, loss.item(), acc, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lrs", default="1e-3,3e-4,1.5e-4", help="comma-separated learning rates (the first: baseline)")
    ap.add_argument("--task", choices=("position", "color", "kind", "bind", "find", "read", "read1"), default="position")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prefix", type=int, default=5, help="text tokens before the image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=50, help="report every N steps")
    ap.add_argument("--scale", type=float, default=1.0, help="shape size multiplier (2: as at 2x2 tiles)")
    ap.add_argument("--squash", action="store_true", help="squeeze a scene-shaped canvas into the tile")
    ap.add_argument("--pos-std", type=float, help="init std of the ViT position and class embeddings (default 0.02)")
    ap.add_argument("--init", help="start from this checkpoint instead of random weights")
    ap.add_argument("--cell-last", type=int, default=0, metavar="STEPS",
                    help="bind / find: for the first STEPS steps the asked cell's (find: colour's) token is the last "
                         "one, where the answer is read (one hop less), then the one before it")
    ap.add_argument("--text-first", type=int, default=0, metavar="STEPS",
                    help="bind: the first STEPS steps give the scene as text (cell and colour tokens in the image's "
                         "16 places) instead of drawing it, as a pretrained LLM has learned to look things up")
    ap.add_argument("--place-words", action="store_true",
                    help="bind: name the cell with two tokens, a row's and a column's (as \"top left\" is two words), "
                         "the column last; with --cell-last the answer is read at the column token")
    ap.add_argument("--ask-first", action="store_true",
                    help="bind: the asked cell comes before the image (the question first, then the image, then the "
                         "template), so the image tokens can look at the question")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="change the tessera-tiny config of a fresh model, e.g. llm_config.hidden_size=512")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.ask_first and (args.cell_last or args.text_first):
        ap.error("--ask-first places the asked cell before the image; it cannot be combined with --cell-last or "
                 "--text-first")
    bind_only = [flag for flag, on in (("--cell-last", args.cell_last and args.task != "find"),
                                        ("--text-first", args.text_first), ("--place-words", args.place_words),
                                        ("--ask-first", args.ask_first)) if on]
    if bind_only and args.task != "bind":
        ap.error(f"{', '.join(bind_only)}: only for --task bind (the layout of its prompt), got --task {args.task}")
    if args.place_words and args.text_first:
        ap.error("--place-words names cells in the drawn scenes only; it cannot be combined with --text-first")
    torch.set_num_threads(args.threads)
    chance = 1 / len(CLASSES[args.task])
    setting = (f", shapes x{args.scale:g}" if args.scale != 1 else "") + (", squashed" if args.squash else "")
    setting += f", from {args.init}" if args.init else ", from random weights"
    setting += "".join(f", {item}" for item in args.set)
    setting += f", cell token last for {args.cell_last} steps" if args.cell_last else ""
    setting += f", scene as text for {args.text_first} steps" if args.text_first else ""
    setting += ", cells named by a row and a column token" if args.place_words else ""
    setting += ", the asked cell before the image" if args.ask_first else ""
    print(f"task {args.task} (chance {chance:.0%}){setting}, {args.steps} steps of {args.batch}, fresh batches")
    print("| lr | step | loss | held-out batch accuracy | seconds |")
    print("|---:|---:|---:|---:|---:|")
    for lr in (float(x) for x in args.lrs.split(",")):
        for step, loss, acc, seconds in run(lr, args.task, args.steps, args.batch, args.prefix, args.seed, args.every,
                                   args.scale, args.squash, args.init, args.pos_std, tuple(args.set), args.cell_last,
                                   args.text_first, args.place_words, args.ask_first):
            print(f"| {lr:g} | {step} | {loss:.3f} | {acc:.0%} | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
