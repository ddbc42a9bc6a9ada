"""Position answers split by whether the asked shape shares its row: is the column looked up, or guessed?

    python benchmarks/row_mates.py [CHECKPOINT] [--scenes 40] [--max-tiles 12] [--seed 99]

On fresh ``tessera.synth`` scenes of 3-6 shapes (seeded), asks "Where is the <colour> <kind>?" for every shape,
greedily, and sorts each answer by whether another shape sits in the asked shape's row ("row-mates") or not
("alone"), and each miss by whose place it names: a row-mate's, a shape's in the same column, another
shape's, or an empty cell's. A model that is right when the shape is alone in its row and names a row-mate's
place when it is not finds the row of the shape it is asked about and then takes the column of any shape in it
(the stage-35 bundled model: 52 of 55 alone, 59 of 113 with row-mates, 53 of the 54 misses a row-mate's place;
docs/bundled-model/history.md, fourteenth session).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lookup_hops import draw_scene  # noqa: E402

import tessera  # noqa: E402
from tessera.synth import vocab as V  # noqa: E402
from tessera.synth.shapes import Shape  # noqa: E402

MISSES = ("a row-mate's place", "a column-mate's place", "another shape's place", "an empty place")


def classify(asked: Shape, scene: list[Shape], answer: str) -> tuple[str, str]:
    """(``"alone"`` or ``"row-mates"``, ``"right"`` or which of ``MISSES``) for one position answer."""
    others = [o for o in scene if o is not asked]
    mates = [o for o in others if o.cell // 3 == asked.cell // 3]
    group = "row-mates" if mates else "alone"
    if answer == V.POSITIONS[asked.cell]:
        return group, "right"
    for miss, pool in zip(MISSES, (mates, [o for o in others if o.cell % 3 == asked.cell % 3], others)):
        if answer in (V.POSITIONS[o.cell] for o in pool):
            return group, miss
    return group, MISSES[-1]


def run(vlm, n_scenes: int, seed: int = 99, max_tiles: int = 12) -> Counter:
    """Counter of (group, outcome) over every shape of ``n_scenes`` scenes, plus (group, "asked")."""
    rng = random.Random(seed)
    tally = Counter()
    for _ in range(n_scenes):
        image, scene = draw_scene(rng, vlm.config.image_size, 3)
        for shape in scene:
            question = V.Q_POSITION[0].format(color=shape.color, kind=shape.kind)
            group, outcome = classify(shape, scene, vlm.chat(question, image, max_tiles=max_tiles, max_new_tokens=4))
            tally[group, "asked"] += 1
            tally[group, outcome] += 1
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", default=None, help="default: the bundled model")
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--max-tiles", type=int, default=12)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    vlm = tessera.load(args.checkpoint, device="cpu", dtype="float32")
    tally = run(vlm, args.scenes, args.seed, args.max_tiles)
    print(f"position answers, {args.scenes} scenes of 3-6 shapes, max_tiles {args.max_tiles}: "
          f"{args.checkpoint or 'the bundled model'}")
    print("| asked shape | right | " + " | ".join(f"misses: {m}" for m in MISSES) + " |")
    print("|---|---:|" + "---:|" * len(MISSES))
    for group in ("alone", "row-mates"):
        cells = [f"{tally[group, o]}" for o in ("right", *MISSES)]
        print(f"| {group} ({tally[group, 'asked']}) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
