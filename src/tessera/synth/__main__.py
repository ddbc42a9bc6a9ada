"""Command line: ``python -m tessera.synth --out DIR --train N --test N --seed S`` (see --help)."""

from __future__ import annotations

import argparse
import sys

from . import vocab as V


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tessera.synth",
        description="Generate tessera's synthetic training data (InternVL meta + JSONL), example images, tokenizer.",
    )
    parser.add_argument("--out", help="dataset directory to write (images/, train.jsonl, test.jsonl, meta_*.json)")
    parser.add_argument("--train", type=int, default=1000, help="number of train samples (default 1000)")
    parser.add_argument("--test", type=int, default=200, help="number of test samples (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile-size", type=int, default=112, help="the model's tile side in pixels (default 112)")
    parser.add_argument("--max-tiles", type=int, default=12, help="the model's max_dynamic_patch (default 12)")
    parser.add_argument(
        "--tasks", default=",".join(V.TASKS),
        help=f"comma-separated subset of {','.join(V.TASKS)}, plus the training-only {','.join(V.TRAIN_TASKS)}",
    )
    parser.add_argument("--train-turns", type=int, default=3, help="max Q/A turns per train image (default 3)")
    parser.add_argument("--text-px", type=int, default=12, help="page text height in pixels (default 12)")
    parser.add_argument("--number-fraction", type=float, default=0.35,
                        help="share of page cells holding a three-digit number (default 0.35; the bundled model's "
                             "data: 0.2)")
    zh = parser.add_mutually_exclusive_group()
    zh.add_argument("--chinese", dest="chinese", action="store_true", default=None, help="force Chinese questions on")
    zh.add_argument("--no-chinese", dest="chinese", action="store_false", help="force Chinese questions off")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (output is the same for any)")
    parser.add_argument("--examples", metavar="DIR", help="also write the example images and README into DIR")
    parser.add_argument("--tokenizer", metavar="DIR", help="also train the tokenizer on text_corpus() into DIR")
    parser.add_argument("--vocab-size", type=int, default=1000, help="tokenizer sentencepiece pieces (default 1000)")
    args = parser.parse_args(argv)
    if not (args.out or args.examples or args.tokenizer):
        parser.error("nothing to do: give --out DIR (dataset), --examples DIR and/or --tokenizer DIR")

    from .corpus import text_corpus
    from .dataset import generate
    from .examples import write_examples
    from .tokenizer import train_tokenizer

    try:
        if args.out:
            paths = generate(
                args.out,
                n_train=args.train,
                n_test=args.test,
                seed=args.seed,
                tile_size=args.tile_size,
                tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()),
                workers=args.workers,
                max_tiles=args.max_tiles,
                train_turns=args.train_turns,
                text_px=args.text_px,
                number_fraction=args.number_fraction,
                chinese=args.chinese,
            )
            print(f"wrote {paths['meta_train']} and {paths['meta_test']}")
        if args.examples:
            write_examples(args.examples, tile_size=args.tile_size, text_px=args.text_px, max_tiles=args.max_tiles)
            print(f"wrote examples into {args.examples}")
        if args.tokenizer:
            train_tokenizer(args.tokenizer, text_corpus(), vocab_size=args.vocab_size)
            print(f"wrote tokenizer into {args.tokenizer}")
    except ValueError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
