"""Count-by-kind answers split by the kind asked and by the true count: which counts does the model miss?

    python benchmarks/count_kinds.py [CHECKPOINT] [--scenes 100] [--max-tiles 12] [--seed 13]

On fresh ``tessera.synth`` scenes of 1-6 shapes (seeded, the generator's own distribution), asks "How many
<kinds> are there?" for every kind, greedily, and tallies the exact-match answers by kind and by how many of
that kind the scene holds, and each miss by its sign (one too few, one too many, further off). In these scenes
two shapes of one kind always differ in colour (no two shapes share colour and kind), so the rows for counts of
2 and more are the lookups that add up one kind across colours: the stage-42 bundled model answered 1 for two
clear stars of two colours (docs/bundled-model/history.md, fifteenth and sixteenth sessions).
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

import torch

import tessera
from tessera.synth import shapes
from tessera.synth import vocab as V

OUTCOMES = ("right", "one too few", "one too many", "further off", "not a number")


def outcome(answer: str, truth: int) -> str:
    """Which of ``OUTCOMES`` an answer is, against the true count."""
    if not answer.isdigit():
        return OUTCOMES[-1]
    delta = int(answer) - truth
    return {0: "right", -1: "one too few", 1: "one too many"}.get(delta, "further off")


def run(vlm, n_scenes: int, seed: int = 13, max_tiles: int = 12) -> Counter:
    """Counter of (row, outcome) over every kind of ``n_scenes`` scenes; rows are kinds, ``n=<count>`` and
    ``all``; (row, "asked") counts the questions."""
    rng = random.Random(seed)
    tally = Counter()
    for _ in range(n_scenes):
        image, scene = shapes.draw_scene(rng, vlm.config.image_size)
        for kind in V.SHAPES:
            truth = sum(s.kind == kind for s in scene)
            question = V.Q_COUNT_KIND[0].format(kinds=V.SHAPES_PLURAL[kind])
            result = outcome(vlm.chat(question, image, max_tiles=max_tiles, max_new_tokens=3), truth)
            for row in (kind, f"n={truth}", "all"):
                tally[row, "asked"] += 1
                tally[row, result] += 1
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", default=None, help="default: the bundled model")
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--max-tiles", type=int, default=12)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    vlm = tessera.load(args.checkpoint, device="cpu", dtype="float32")
    tally = run(vlm, args.scenes, args.seed, args.max_tiles)
    print(f"count by kind, {args.scenes} scenes x {len(V.SHAPES)} kinds, max_tiles {args.max_tiles}: "
          f"{args.checkpoint or 'the bundled model'}")
    print("| asked | " + " | ".join(OUTCOMES) + " |")
    print("|---|" + "---:|" * len(OUTCOMES))
    counts = sorted((row for row, what in tally if what == "asked" and row.startswith("n=")), key=lambda r: int(r[2:]))
    for row in (*V.SHAPES, *counts, "all"):
        print(f"| {row} ({tally[row, 'asked']}) | " + " | ".join(str(tally[row, o]) for o in OUTCOMES) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
