"""Where is the colour of "the shape in the top left" lost: in the image tokens, or between question and answer?

    python benchmarks/lookup_hops.py [CHECKPOINT] [--scenes 200] [--max-tiles 1] [--sep ": "] [--key-use 60]

On fresh scenes of 2-6 shapes (``tessera.synth`` scenes, seeded), the colour of each shape is scored
teacher-forced (the gold text up to it, the model's top token compared with the colour's) in three contexts:

- **describe**: inside the answer to "Describe the image.", right after its place (``top left: red circle``, or
  with ``--sep " "`` ``top left red circle``): the place was just written, so the colour is looked up where it
  is read (one hop);
- **question**: the first answer token of "What color is the shape in the top left?": the place is in the
  question, several template tokens before the answer, and has to be carried there first (two hops);
- **echo**: the same question answered ``top left: red``: the place copied into the answer, the colour after it.

``--key-use N`` also asks, greedily, on N scenes of 3-6 shapes, the colour of the shape at every occupied place,
the number of shapes of every colour and the place of every shape (by its colour and kind), and counts the
scenes where the answers are all the same: a model that answers every place (or colour) alike reads the
question's form and not its key (``benchmarks/place_lookup.py`` looks at the last form more closely).

A model that scores high on describe and low on question sees the colours at their places and fails to carry
the question's place to where the answer is read (``benchmarks/learnability.py --task bind --cell-last`` is
the same contrast, stripped down). The linear probe ``benchmarks/probe_features.py --task cell-color`` says
how much of it the image tokens hold at all.
"""

from __future__ import annotations

import argparse
import random

import torch

import tessera
from tessera.synth import shapes
from tessera.synth import vocab as V

CONTEXTS = ("describe", "question", "echo")


def next_token_right(vlm, prompt_ids: list[int], pixel_values: torch.Tensor, answer: str,
                     targets: set[int]) -> list[bool]:
    """Teacher-forced: for each answer token whose id is in ``targets``, whether the model's top next-token
    prediction at the position before it is that token."""
    ids, top = top_tokens(vlm, prompt_ids, pixel_values, answer)
    return [top[p - 1] == ids[p] for p in range(len(prompt_ids), len(ids)) if ids[p] in targets]


def top_tokens(vlm, prompt_ids: list[int], pixel_values: torch.Tensor, answer: str) -> tuple[list[int], list[int]]:
    """(prompt + answer ids, the model's top next token at each of their positions), one teacher-forced pass."""
    ids = prompt_ids + vlm.tokenizer.encode(answer, add_special_tokens=False)
    batch = torch.tensor([ids], device=vlm.device)
    model = vlm.model
    with torch.no_grad():
        hidden = model.language_model(model.embed(batch, pixel_values=pixel_values),
                                      torch.arange(len(ids), device=vlm.device)[None])
        return ids, model.language_model.logits(hidden[0]).argmax(-1).tolist()


def draw_scene(rng: random.Random, image_size: int, min_shapes: int) -> tuple:
    """A fresh ``tessera.synth`` scene (image, shapes) of at least ``min_shapes`` shapes."""
    image, scene = shapes.draw_scene(rng, image_size)
    while len(scene) < min_shapes:
        image, scene = shapes.draw_scene(rng, image_size)
    return image, scene


def score(vlm, n_scenes: int, seed: int = 97, max_tiles: int = 1, sep: str = ": ") -> dict[str, tuple[int, int]]:
    """(right, asked) per context over ``n_scenes`` fresh scenes of 2-6 shapes."""
    tok = vlm.tokenizer
    # Colours inside text carry the word-start mark (``▁red``); a whole answer starts without it (``red``).
    inner = {tok.encode("a " + c, add_special_tokens=False)[1] for c in V.COLORS}
    first = {c: tok.encode(c, add_special_tokens=False)[0] for c in V.COLORS}
    rng = random.Random(seed)
    tally = {c: [0, 0] for c in CONTEXTS}

    def add(context: str, right: list[bool]) -> None:
        tally[context][0] += sum(right)
        tally[context][1] += len(right)

    for _ in range(n_scenes):
        image, scene = draw_scene(rng, vlm.config.image_size, 2)
        req = vlm.prepare(V.Q_DESCRIBE[0], image, max_tiles=max_tiles)
        add("describe", next_token_right(vlm, req.input_ids, req.pixel_values, shapes.describe(scene, sep), inner))
        for shape in scene:
            place = V.POSITIONS[shape.cell]
            req = vlm.prepare(V.Q_COLOR_POS[0].format(pos=place), image, max_tiles=max_tiles)
            # One pass scores both: the plain answer's first token is predicted where the echo's place starts.
            ids, top = top_tokens(vlm, req.input_ids, req.pixel_values, f"{place}{sep}{shape.color}")
            add("question", [top[len(req.input_ids) - 1] == first[shape.color]])
            echo = [top[p - 1] == ids[p] for p in range(len(req.input_ids), len(ids)) if ids[p] in inner]
            add("echo", echo[-1:])
    return {c: (right, asked) for c, (right, asked) in tally.items()}


def key_use(vlm, n_scenes: int, seed: int = 98, max_tiles: int = 1,
            strip_key: bool = False) -> dict[str, tuple[int, int, int, int]]:
    """Per question form (colour by place, count by colour, place by colour and kind, colour by kind, count by
    kind): (scenes where every answer was the same, scenes, right answers, questions) over ``n_scenes`` fresh
    scenes of 3-6 shapes, greedy. Colour by kind asks only the kinds that occur once in the scene (the others have no one
    answer), and a scene counts for it only with two such kinds or more. ``strip_key``: score what follows a
    copied key (``red: 2`` -> ``2``), for checkpoints trained to copy it (``SynthConfig.key_echo``)."""
    rng = random.Random(seed)
    forms = ("colour by place", "count by colour", "place by colour and kind", "colour by kind", "count by kind")
    tally = {form: [0, 0, 0, 0] for form in forms}
    for _ in range(n_scenes):
        image, scene = draw_scene(rng, vlm.config.image_size, 3)
        asked = {
            "colour by place": [(V.Q_COLOR_POS[0].format(pos=V.POSITIONS[s.cell]), s.color) for s in scene],
            "count by colour": [(V.Q_COUNT_COLOR[0].format(color=c), str(sum(s.color == c for s in scene)))
                                for c in V.COLORS],
            "place by colour and kind": [(V.Q_POSITION[0].format(color=s.color, kind=s.kind), V.POSITIONS[s.cell])
                                         for s in scene],
            "colour by kind": [(V.Q_COLOR_KIND[0].format(kind=s.kind), s.color) for s in scene
                               if sum(o.kind == s.kind for o in scene) == 1],
            "count by kind": [(V.Q_COUNT_KIND[0].format(kinds=V.SHAPES_PLURAL[k]), str(sum(s.kind == k for s in scene)))
                              for k in V.SHAPES],
        }
        for form, pairs in asked.items():
            if len(pairs) < 2:
                continue
            answers = [vlm.chat(q, image, max_tiles=max_tiles, max_new_tokens=8) for q, _ in pairs]
            if strip_key:
                answers = [a.rpartition(": ")[2] for a in answers]
            row = tally[form]
            row[0] += len(set(answers)) == 1
            row[1] += 1
            row[2] += sum(a == truth for a, (_, truth) in zip(answers, pairs))
            row[3] += len(pairs)
    return {form: tuple(row) for form, row in tally.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", default=None, help="default: the bundled model")
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--max-tiles", type=int, default=1)
    ap.add_argument("--sep", default=": ", choices=(": ", " "), help="between a describe line's place and colour")
    ap.add_argument("--seed", type=int, default=97)
    ap.add_argument("--key-use", type=int, default=0, metavar="N",
                    help="also ask every place / colour / shape / kind of N scenes and count the scenes answered all alike")
    ap.add_argument("--strip-key", action="store_true",
                    help="with --key-use: score the answer after a copied key (`red: 2` -> `2`)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    vlm = tessera.load(args.checkpoint, device="cpu", dtype="float32")
    vlm.model.eval()
    scores = score(vlm, args.scenes, args.seed, args.max_tiles, args.sep)
    print(f"colour of the shape at a place, teacher-forced, {args.scenes} scenes of 2-6 shapes, "
          f"max_tiles {args.max_tiles}: {args.checkpoint or 'the bundled model'}")
    print("| context | right |")
    print("|---|---:|")
    for context, (right, asked) in scores.items():
        print(f"| {context} | {right / max(asked, 1):.1%} of {asked} |")
    if args.key_use:
        print(f"\ngreedy answers on {args.key_use} scenes of 3-6 shapes, every place / colour / shape asked")
        print("| question form | scenes answered all alike | right |")
        print("|---|---:|---:|")
        for form, (alike, scenes, right, asked) in key_use(vlm, args.key_use, args.seed + 1, args.max_tiles,
                                                         args.strip_key).items():
            print(f"| {form} | {alike} of {scenes} | {right / max(asked, 1):.1%} of {asked} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
