"""``tessera eval``: predict + score benchmarks (data-parallel under torchrun), or re-score saved predictions.

    tessera eval --model PATH --bench textvqa,docvqa --data DIR [--out DIR] [--max-tiles 1,4,12] [--limit N]
                 [--batch-size N]
    tessera eval --score-only [--out DIR] [--bench NAME,...]
    torchrun --nproc_per_node 8 -m tessera.eval --model PATH --bench mme --data DIR
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from tessera.eval.benchmarks import BENCHMARKS, get_benchmark
from tessera.eval.distributed import Dist
from tessera.eval.report import write_report
from tessera.eval.runner import evaluate, find_runs, score_run

HELP = "evaluate a model on InternVL 1.5 benchmarks (or re-score saved predictions)"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected N or N,N,... (integers), got {text!r}") from e
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    for name in names:
        try:
            get_benchmark(name)
        except KeyError as e:
            raise argparse.ArgumentTypeError(str(e.args[0])) from e
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint directory or Hugging Face repo id (default: the bundled model)")
    p.add_argument("--bench", type=_names, help=f"benchmark(s), comma-separated: {', '.join(sorted(BENCHMARKS))}")
    p.add_argument("--data", type=Path, help="data root: <data>/<bench>/ per benchmark, or the benchmark's own dir")
    p.add_argument("--out", type=Path, default=Path("eval_results"), help="output directory (default eval_results)")
    p.add_argument("--max-tiles", type=_int_list, help="max tiles per image, or a sweep like 1,4,12 "
                   "(default: each benchmark's official setting)")
    p.add_argument("--limit", type=int, help="only the first N items of each benchmark")
    p.add_argument("--batch-size", type=int, default=1, help="questions per batch_chat call (official: 1)")
    p.add_argument("--max-new-tokens", type=int, help="override each benchmark's official max_new_tokens")
    p.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK if available, else cpu), cpu, cuda:N")
    p.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: the checkpoint's)")
    p.add_argument("--compile", action="store_true",
                   help="compiled decode (torch.compile, CUDA graphs on GPU): one compilation per batch size, then "
                        "several times faster decoding; worth it for long runs on a GPU")
    p.add_argument("--score-only", action="store_true", help="re-score existing predictions in --out; no model")
    p.add_argument("--vqa-normalizer", choices=("internvl", "official"), default="internvl",
                   help="TextVQA answer normaliser (default internvl, as the 1.5 report)")
    p.add_argument("--chartqa-order", choices=("internvl", "gold"), default="internvl",
                   help="ChartQA relative error over the prediction (internvl) or over the gold answer")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--vlm-factory", help=argparse.SUPPRESS)  # MODULE:FUNC(model, device=, dtype=) -> model object


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to an argparse subparsers object (``run`` is its handler)."""
    p = subparsers.add_parser("eval", help=HELP, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def _device(spec: str, dist: Dist) -> str:
    if spec != "auto":
        return spec
    import torch

    return f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu"


def load_model(args: argparse.Namespace, dist: Dist) -> Any:
    device = _device(args.device, dist)
    if args.vlm_factory:
        module, _, func = args.vlm_factory.partition(":")
        return getattr(importlib.import_module(module), func)(args.model, device=device, dtype=args.dtype)
    import tessera

    return tessera.load(args.model, device=device, dtype=args.dtype, compile=getattr(args, "compile", False))


def _model_name(args: argparse.Namespace) -> str:
    if args.model is not None:
        return str(args.model)
    from tessera.vlm import default_model_path

    return str(default_model_path())


def run(args: argparse.Namespace) -> int:
    """Handler of ``tessera eval``; returns the process exit code."""
    options = {"vqa_normalizer": args.vqa_normalizer, "chartqa_order": args.chartqa_order}
    if args.score_only:
        runs = find_runs(args.out, args.bench)
        if not runs:
            print(f"error: no prediction runs under {args.out}", file=sys.stderr)
            return 2
        for run_dir in runs:
            score_run(run_dir, options)
        print(write_report(args.out)["markdown"])
        return 0
    missing = [f"--{k}" for k in ("bench", "data") if getattr(args, k) is None]
    if missing:
        print(f"error: {', '.join(missing)} required (or use --score-only)", file=sys.stderr)
        return 2
    dist = Dist.from_env()
    try:
        vlm = load_model(args, dist)
        evaluate(vlm, args.bench, args.data, args.out, model=_model_name(args), max_tiles=args.max_tiles,
                 max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, limit=args.limit,
                 score_options=options, dist=dist, progress=not args.no_progress)
        if dist.is_main:
            print(write_report(args.out)["markdown"])
        dist.barrier()
    finally:
        dist.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tessera.eval ...`` (same options as ``tessera eval``; a leading ``eval`` is accepted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="python -m tessera.eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130  # predictions written so far stay on disk; rerun the same command to resume
    except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
