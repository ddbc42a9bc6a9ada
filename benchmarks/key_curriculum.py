"""The key-echo curriculum as one command: three shape stages that teach the model to read the question's key,
then stage 13's reading-and-everything mix, then the held-out ablation.

    python benchmarks/key_curriculum.py --out runs/keycur [--max-tiles 12] [--echo-counts] [--device cuda]

From a checkpoint (default: the bundled model), with the stage-2 recipe (2e-4 constant, batches of 32) at
``--max-tiles`` tiles:

1. **full**: ``--steps`` [0] steps of fresh shape scenes whose answers copy the question's key first
   (``top left: red``; with ``--echo-counts`` also ``red: 2``),
2. **partial**: [1] steps whose answers copy only the key's last word (``left: red``),
3. **plain**: [2] steps of plain answers (the same scenes as 2),

then ``benchmarks/lookup_hops.py`` (teacher-forced colour by place and greedy key use, one tile), stage 13's
recipe on fresh pages and every task (``--after-steps``; 0 skips it) and ``tessera eval --bench synth`` at
``--eval-tiles`` on ``--test-dir`` (the bundle's held-out split). Each phase appends one JSON line to
``OUT/summary.jsonl`` as it finishes, so a run cut short keeps what it measured; finished phases are skipped
when the command is run again. The tenth session ran the three stages at one tile (docs/bundled-model/history.md).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lookup_hops  # noqa: E402

from tessera.synth import generate  # noqa: E402
from tessera.synth.bundle import COMMON, DATA, KEY_WEIGHTS, SHAPE_TASKS, ablation, meta_path  # noqa: E402
from tessera.train import TrainConfig, run_training  # noqa: E402
from tessera.vlm import default_model_path  # noqa: E402

ECHOES = ("full", "partial", "none")
STAGE_NAMES = ("full", "partial", "plain")


def log(out: Path, phase: str, **fields) -> None:
    """Append one phase's result to ``out/summary.jsonl`` and print it."""
    line = json.dumps({"phase": phase, **fields})
    with open(out / "summary.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")
    print(line, flush=True)


def train(out: Path, name: str, recipe: str, start: str, meta: Path, steps: int, seed: int,
          args: argparse.Namespace, extra: tuple[str, ...] = ()) -> Path:
    """One stage from ``start``; returns its final checkpoint (kept if already there)."""
    run_dir = out / name
    if not (run_dir / "final").exists():
        t0 = time.time()
        config = TrainConfig.from_yaml(recipe, [
            f"model.model_name_or_path={start}", f"data.meta_path={meta}", f"run.output_dir={run_dir}",
            f"optim.max_steps={steps}", f"run.seed={seed}", f"run.device={args.device}", "run.precision=auto",
            f"data.num_workers={args.loader_workers}", f"run.threads={args.threads}", "run.plot=false",
            f"run.save_steps={max(steps, 1)}", f"run.resume={'true' if run_dir.exists() else 'false'}", *extra])
        run_training(config)
        log(out, name, steps=steps, seconds=round(time.time() - t0, 1))
    return run_dir / "final"


def key_use(out: Path, ckpt: Path, args: argparse.Namespace) -> None:
    """``lookup_hops.py`` on ``ckpt`` (CPU, one tile), its table kept in the summary."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        lookup_hops.main([str(ckpt), "--scenes", str(args.hops_scenes), "--key-use", str(args.hops_key_use),
                          "--threads", str(args.threads)])
    print(buf.getvalue(), flush=True)
    log(out, "lookup_hops", checkpoint=str(ckpt), table=buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="work directory (resumable)")
    ap.add_argument("--start", default=None, help="checkpoint to start from (default: the bundled model)")
    ap.add_argument("--max-tiles", type=int, default=12, help="max_dynamic_patch of the three key stages")
    ap.add_argument("--echo-counts", action="store_true", help="counts by colour or kind copy their key too")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override for the three key stages (repeatable), e.g. model.freeze_backbone=true")
    ap.add_argument("--count-weight", type=float, default=KEY_WEIGHTS["count"])
    ap.add_argument("--weight", action="append", default=[], metavar="TASK=W",
                    help="a task's weight in the three key stages (repeatable; a new task such as the training-only "
                         "locate joins them), e.g. --weight locate=1.5")
    ap.add_argument("--scenes", type=int, default=12800, help="training scenes per data set")
    ap.add_argument("--data-seeds", default="100,101,101", help="full, partial, plain (same seed: same scenes)")
    ap.add_argument("--run-seeds", default="95,96,97")
    ap.add_argument("--steps", default="400,300,300")
    ap.add_argument("--after-steps", type=int, default=600, help="stage 13's recipe afterwards (0: skip)")
    ap.add_argument("--after-seeds", default="48,49,73", help="its pages, its mix, its run")
    ap.add_argument("--after-sizes", default="6400,12800", help="its pages, its mix")
    ap.add_argument("--test-dir", default=None, help="held-out split for the ablation (none: no ablation)")
    ap.add_argument("--eval-tiles", default="1,4,12")
    ap.add_argument("--hops-scenes", type=int, default=200)
    ap.add_argument("--hops-key-use", type=int, default=60)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2, help="data generation processes")
    ap.add_argument("--loader-workers", type=int, default=1, help="training data-loader workers")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_seeds = [int(s) for s in args.data_seeds.split(",")]
    run_seeds = [int(s) for s in args.run_seeds.split(",")]
    steps = [int(s) for s in args.steps.split(",")]
    weights = {**KEY_WEIGHTS, "count": args.count_weight}
    for item in args.weight:
        task, _, w = item.partition("=")
        try:
            weights[task] = float(w)
        except ValueError:
            ap.error(f"--weight {item}: expected TASK=NUMBER, e.g. locate=1.5")
    tasks = tuple(dict.fromkeys((*SHAPE_TASKS, *weights)))
    log(out, "start", args=vars(args))

    ckpt = Path(args.start) if args.start else default_model_path()
    for name, echo, seed, run_seed, n in zip(STAGE_NAMES, ECHOES, data_seeds, run_seeds, steps):
        data = out / f"data-{name}"
        if not (data / "meta_train.json").exists():
            generate(data, n_train=args.scenes, n_test=0, seed=seed, tasks=tasks, weights=weights,
                     key_echo=echo, echo_counts=args.echo_counts, workers=args.workers, **COMMON)
        ckpt = train(out, name, "tessera-tiny-stage2", str(ckpt), data / "meta_train.json", n, run_seed, args,
                     (f"model.max_dynamic_patch={args.max_tiles}", *args.set))
    key_use(out, ckpt, args)

    if args.after_steps:
        read_seed, mix_seed, run_seed = (int(s) for s in args.after_seeds.split(","))
        n_read, n_mix = (int(s) for s in args.after_sizes.split(","))
        parts = ("data-stage13-read", "data-stage13-mix")
        for part, seed, n in zip(parts, (read_seed, mix_seed), (n_read, n_mix)):
            if not (out / part / "meta_train.json").exists():
                generate(out / part, n_train=n, n_test=0, workers=args.workers, **{**COMMON, **DATA[part], "seed": seed})
        ckpt = train(out, "stage13", "tessera-tiny-stage13", str(ckpt), meta_path(out, "stage13", parts),
                     args.after_steps, run_seed, args)

    if args.test_dir:
        eval_dir = ablation(ckpt, Path(args.test_dir), out / "eval", tiles=args.eval_tiles, device=args.device)
        scores = {f.parent.name: json.loads(f.read_text())["metrics"]
                  for f in sorted(eval_dir.glob("synth/tiles-*/scores.json"))}
        log(out, "eval", checkpoint=str(ckpt), scores=scores)
    log(out, "done", checkpoint=str(ckpt))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
