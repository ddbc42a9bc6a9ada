"""Does "Where is the red circle?" read its key? The place of a shape looked up from its colour and kind.

    python benchmarks/place_lookup.py [CHECKPOINT] [--max-tiles 1] [--scenes 30] [--threads 2]

``lookup_hops.py`` turned around: on fresh scenes of 3-6 shapes (``tessera.synth`` scenes, seeded), every shape
is asked "Where is the {colour} {kind}?", and scored

- **first word, teacher-forced**: the model's top first answer token against the place's first word;
- **greedy**: the whole answer (``chat``, up to 6 tokens) against the place;
- **after the full key** (teacher-forced): the place's first token when the answer is ``red circle: top left``
  (the key copied first, ``SynthConfig.key_echo="full"``); **after the kind**: when it is ``circle: top left``
  (``"partial"``);

each also for the shapes whose colour is the only one of its colour in the scene ("unique": at one tile, where
the kind cannot be seen, the colour alone finds them). Then **scenes alike**: the scenes where every shape got
the same greedy answer (a model that does not read the key), **wrong column**: greedy answers with the right
first word and another occupied place (the row found, the column taken from another shape), and the place tokens
of the training-only ``locate`` answer (``red circle: top left`` for every shape), teacher-forced.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lookup_hops import draw_scene, top_tokens  # noqa: E402

import tessera  # noqa: E402
from tessera.synth import shapes  # noqa: E402
from tessera.synth import vocab as V  # noqa: E402

ROWS = ("first word", "greedy", "after the full key", "after the kind")


def score(vlm, n_scenes: int, max_tiles: int = 1, seed: int = 123) -> dict:
    """{row: {"all": [right, asked], "unique": [right, asked]}} plus "alike" [scenes, of], "wrong column"
    [answers, of wrong greedy answers] and "locate" [right, place tokens]."""
    tok = vlm.tokenizer
    tally = {row: {"all": [0, 0], "unique": [0, 0]} for row in ROWS}
    alike, wrong_column, wrong = 0, 0, 0
    rng = random.Random(seed)
    for _ in range(n_scenes):
        image, scene = draw_scene(rng, vlm.config.image_size, 3)
        places = [V.POSITIONS[s.cell] for s in scene]
        answers = []
        for s, place in zip(scene, places):
            unique = sum(x.color == s.color for x in scene) == 1
            question = V.Q_POSITION[0].format(color=s.color, kind=s.kind)
            req = vlm.prepare(question, image, max_tiles=max_tiles)
            n = len(req.input_ids)
            right = {}
            ids, top = top_tokens(vlm, req.input_ids, req.pixel_values, place)
            right["first word"] = top[n - 1] == ids[n]
            for row, key in (("after the full key", f"{s.color} {s.kind}"), ("after the kind", s.kind)):
                at = n + len(tok.encode(f"{key}:", add_special_tokens=False))
                ids, top = top_tokens(vlm, req.input_ids, req.pixel_values, f"{key}: {place}")
                right[row] = top[at - 1] == ids[at]
            answer = vlm.chat(question, image, max_tiles=max_tiles, max_new_tokens=6)
            answers.append(answer)
            right["greedy"] = answer == place
            if answer != place:
                wrong += 1
                wrong_column += answer in places and answer.split()[0] == place.split()[0]
            for row, ok in right.items():
                for group in ("all", "unique") if unique else ("all",):
                    tally[row][group][0] += ok
                    tally[row][group][1] += 1
        alike += len(set(answers)) == 1
    return {**tally, "alike": [alike, n_scenes], "wrong column": [wrong_column, wrong],
            "locate": locate_tokens(vlm, n_scenes, max_tiles, seed + 198)}


def locate_tokens(vlm, n_scenes: int, max_tiles: int, seed: int) -> list[int]:
    """[right, asked] over the place tokens (after each ``:`` up to the line's end) of ``locate`` answers."""
    tok = vlm.tokenizer
    colon = tok.encode("a:", add_special_tokens=False)[-1]
    newline = tok.encode("a\nb", add_special_tokens=False)[1]
    rng = random.Random(seed)
    right = asked = 0
    for _ in range(n_scenes):
        image, scene = draw_scene(rng, vlm.config.image_size, 3)
        req = vlm.prepare(V.Q_LOCATE[0], image, max_tiles=max_tiles)
        ids, top = top_tokens(vlm, req.input_ids, req.pixel_values, shapes.locate(scene))
        inside = False
        for p in range(len(req.input_ids), len(ids)):
            if inside and ids[p] != newline:
                right += top[p - 1] == ids[p]
                asked += 1
            inside = (inside or ids[p] == colon) and ids[p] != newline
    return [right, asked]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", default=None, help="default: the bundled model")
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--max-tiles", type=int, default=1)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    vlm = tessera.load(args.checkpoint, device="cpu", dtype="float32")
    vlm.model.eval()
    s = score(vlm, args.scenes, args.max_tiles, args.seed)

    def pct(pair: list[int]) -> str:
        return f"{pair[0] / max(pair[1], 1):.1%} of {pair[1]}"

    print(f"place of every shape by its colour and kind, {args.scenes} scenes of 3-6 shapes, max_tiles "
          f"{args.max_tiles}: {args.checkpoint or 'the bundled model'}")
    print("| score | all shapes | unique colour |")
    print("|---|---:|---:|")
    for row in ROWS:
        print(f"| {row} | {pct(s[row]['all'])} | {pct(s[row]['unique'])} |")
    print(f"\nscenes answered all alike: {s['alike'][0]} of {s['alike'][1]}; wrong greedy answers with the right "
          f"first word and another shape's place: {s['wrong column'][0]} of {s['wrong column'][1]}; "
          f"locate place tokens: {pct(s['locate'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
