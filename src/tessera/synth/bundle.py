"""Build tessera's bundled model end to end: ``python -m tessera.synth.bundle [--install]``.

1. generate the synthetic data (stage-1 easy tasks; stage-2 all tasks + the held-out test split),
2. train the sentencepiece tokenizer on the synthetic text (InternLM2 layout),
3. train stage 1 and stage 2 with the recipes ``tessera/recipes/tessera-tiny-stage{1,2}.yaml``,
4. evaluate the held-out split with ``tessera eval --bench synth`` at max_tiles 1, 4 and 12 (the dynamic
   high-resolution ablation, with its plot),
5. with ``--install``, copy the final checkpoint into ``tessera/assets/tessera-tiny`` (the default model of
   ``tessera.load()``, ``tessera chat`` and ``tessera serve``) and the ablation report into ``docs/``.

Everything is seeded; the same command on the same software gives the same model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from ..train import TrainConfig, run_training
from . import generate, text_corpus
from .tokenizer import train_tokenizer

STAGE1_TASKS = ("count", "color", "shape")
MODEL_FILES = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.model",
               "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


def build(out: Path, *, n_stage1: int, n_stage2: int, n_test: int, workers: int, seed: int = 0,
          overrides1: list[str] = (), overrides2: list[str] = ()) -> Path:
    """Run steps 1-3; returns the final checkpoint directory."""
    out.mkdir(parents=True, exist_ok=True)
    common = dict(tile_size=112, workers=workers, chinese=True, number_fraction=0.2, train_turns=6)
    if not (out / "stage1-data" / "meta_train.json").exists():
        generate(out / "stage1-data", n_train=n_stage1, n_test=0, seed=seed + 1, tasks=STAGE1_TASKS, big_shapes=True,
                 **common)
    if not (out / "data" / "meta_test.json").exists():
        generate(out / "data", n_train=n_stage2, n_test=n_test, seed=seed, **common,
                 weights={"read": 4.0, "count": 1.0, "color": 1.0, "shape": 1.0, "position": 1.0, "chart": 1.0})
    tok = out / "tokenizer"
    if not (tok / "tokenizer.model").exists():
        train_tokenizer(tok, text_corpus(chinese=True), vocab_size=1000)

    stage1 = TrainConfig.from_yaml("tessera-tiny-stage1", [
        f"model.tokenizer_path={tok}", f"data.meta_path={out / 'stage1-data' / 'meta_train.json'}",
        f"run.output_dir={out / 'stage1'}", "run.resume=true" if (out / "stage1").exists() else "run.resume=false",
        *overrides1,
    ])
    final1 = out / "stage1" / "final"
    if not final1.exists():
        run_training(stage1)
    stage2 = TrainConfig.from_yaml("tessera-tiny-stage2", [
        f"model.model_name_or_path={final1}", f"data.meta_path={out / 'data' / 'meta_train.json'}",
        f"run.output_dir={out / 'stage2'}", "run.resume=true" if (out / "stage2").exists() else "run.resume=false",
        *overrides2,
    ])
    final2 = out / "stage2" / "final"
    if not final2.exists():
        run_training(stage2)
    return final2


def ablation(ckpt: Path, data: Path, out: Path, tiles: str = "1,4,12") -> Path:
    """``tessera eval --bench synth --max-tiles 1,4,12`` on the held-out split; returns the eval directory."""
    from ..eval.cli import main as eval_main

    code = eval_main(["--model", str(ckpt), "--bench", "synth", "--data", str(data), "--out", str(out),
                      "--max-tiles", tiles, "--batch-size", "16", "--device", "cpu", "--dtype", "float32"])
    if code:
        raise RuntimeError(f"tessera eval exited with {code}")
    return out


def install(ckpt: Path, eval_dir: Path, repo: Path) -> None:
    """Copy the model into the package and the ablation report/plot into docs/."""
    dest = Path(__file__).resolve().parent.parent / "assets" / "tessera-tiny"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in MODEL_FILES:
        shutil.copy2(ckpt / name, dest / name)
    docs = repo / "docs" / "bundled-model"
    docs.mkdir(parents=True, exist_ok=True)
    for item in eval_dir.iterdir():
        if item.suffix in (".md", ".json", ".png"):
            shutil.copy2(item, docs / item.name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build tessera's bundled model (data, tokenizer, 2 stages, ablation).")
    ap.add_argument("--out", default="runs/tessera-tiny", help="work directory (resumable)")
    ap.add_argument("--stage1", type=int, default=4000, help="stage-1 training images")
    ap.add_argument("--stage2", type=int, default=10000, help="stage-2 training images")
    ap.add_argument("--test", type=int, default=600, help="held-out images (100 per task)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--install", action="store_true", help="copy the result into the package and docs/")
    ap.add_argument("--stage1-override", action="append", default=[], help="key=value for the stage-1 recipe")
    ap.add_argument("--stage2-override", action="append", default=[], help="key=value for the stage-2 recipe")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    start = time.time()
    final = build(out, n_stage1=args.stage1, n_stage2=args.stage2, n_test=args.test, workers=args.workers,
                  overrides1=args.stage1_override, overrides2=args.stage2_override)
    eval_dir = ablation(final, out / "data", out / "eval")
    (out / "build.json").write_text(json.dumps({"final": str(final), "seconds": time.time() - start}, indent=2))
    if args.install:
        install(final, eval_dir, Path.cwd())
    print(f"done in {(time.time() - start) / 60:.1f} min: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
