"""Build tessera's bundled model end to end: ``python -m tessera.synth.bundle [--install]``.

1. generate the synthetic data: stage 1 one-shape scenes, stage 2 full shape scenes, stage 3 every task, stage 4
   one-shape scenes asking only the kind, stage 5 fresh scenes (kind and describe weighted up) with a few pages
   and charts, stages 6-7 one-tile reading pages (up to three boxes, then one), stage 8 whole pages with one box
   together with every task, stage 9 every task with counting weighted up, stages 10-11 stages 7-8 again on
   fresh data, stages 12-13 the same with numbers in most page cells, stages 14-17 shape scenes whose answers
   copy the question's key (all of it, its last word, none), stages 18-19 stage 13's mix twice more, stages
   20-25 shape scenes with the training-only ``locate`` task and position answers that copy their key, stages
   26-29 stage 13's mix four times more, stages 30-31 shape scenes with the training-only ``tally`` task and
   one-tile pages, stage 32 stage 13's mix once more, stages 33-34 shape scenes with the training-only
   ``paint`` task and one-tile pages, stage 35 the mix again, stages 36-37 with ``tally_kind``, stage 38 the mix
   again, stage 39 shape scenes with every place-naming task and one-tile pages, stage 40 the mix again, stage
   41 shape scenes with most count and colour questions in Chinese and one-tile pages, stage 42 the mix again,
   stage 43 shape scenes with one or two kinds in several colours and one-tile pages, stage 44 the mix again,
   and the held-out test split (100 images per task),
2. train the sentencepiece tokenizer on the synthetic text (InternLM2 layout, describe lines included),
3. train the curriculum stages of ``STAGES`` with ``tessera/recipes/tessera-tiny-<stage>.yaml``, each from the
   previous checkpoint: one shape at one tile, full scenes at one tile, every task with up to 12 tiles, then
   the shape's kind at up to 12 tiles (where a shape is large enough to tell its kind) and scenes again there,
   then reading: the words of one page tile first, then whole pages, and a last mixed stage that brings back
   the counting the reading stages wore down; stages 10-11 run stages 7-8 again on fresh data, and stages
   12-13 once more with numbers in most page cells (a number needs every digit right); stages 14-17 teach
   the answer to follow the question's key (the place, colour or kind it names) and 18-19 bring reading back;
   stages 20-25 teach position answers to find the shape the question names (``locate``, then echoes of the
   key, mostly at one tile) and 26-29 bring reading back again; stages 30-31 teach count by colour its key the
   same way (``tally``, at one tile, with pages so that reading survives) and 32 mixes every task again;
   stages 33-34 do the same for colour by kind (``paint``) and 35 mixes every task again; 36-37 for count by
   kind (``tally_kind``) and 38 mixes every task again; before stage 39 the tokenizer gets the 8 two-word places
   (``top right``, ...) as single tokens (:mod:`tessera.synth.phrases`: the model's function is unchanged), which
   stage 39 teaches at one tile and 40 mixes every task again; 41 asks most count and colour questions in
   Chinese and 42 mixes every task again; 43 counts kinds that come in several colours and 44 mixes every
   task again,
4. evaluate the held-out split with ``tessera eval --bench synth`` at max_tiles 1, 4 and 12 (the dynamic
   high-resolution ablation, with its plot),
5. with ``--install``, copy the final checkpoint into ``tessera/assets/tessera-tiny`` (the default model of
   ``tessera.load()``, ``tessera chat`` and ``tessera serve``) and the ablation report into ``docs/``.

Everything is seeded; the same command on the same software gives the same model. (The shipped model's stages
14-16 ran on a lent H200, bf16, the rest on a 2-core CPU: a CPU rebuild follows the same recipes, not the
same bytes.) Every step is resumable:
data, tokenizer and finished stages are kept, and an interrupted stage resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from ..train import TrainConfig, run_training
from . import generate, text_corpus
from . import vocab as V
from .phrases import extend_checkpoint
from .tokenizer import train_tokenizer

SHAPE_TASKS = ("count", "color", "shape", "position", "describe")
MODEL_FILES = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.model",
               "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
# (data directory, generate() arguments) per stage; the held-out split is its own directory.
DATA = {
    "data-stage1": dict(seed=11, tasks=SHAPE_TASKS, max_shapes=1,
                        weights={"count": 0.3, "color": 1.0, "shape": 1.0, "position": 1.0, "describe": 1.0}),
    "data-stage2": dict(seed=12, tasks=SHAPE_TASKS),
    "data-stage3": dict(seed=13, tasks=(*V.TASKS, "describe"),
                        weights={"count": 1.0, "color": 1.0, "shape": 1.0, "position": 1.0, "describe": 1.0,
                                 "read": 1.5, "chart": 1.0}),
    "data-stage4": dict(seed=21, tasks=("shape",), max_shapes=1),
    "data-stage5": dict(seed=16, tasks=(*V.TASKS, "describe"),
                        weights={"count": 1.0, "color": 1.0, "shape": 1.5, "position": 1.0, "describe": 1.5,
                                 "read": 0.4, "chart": 0.4}),
    # Reading: one-tile pages (the words at their full-page size, nothing to search), first with up to three
    # boxes per page, then one; then whole pages with one box, mixed with everything else.
    "data-stage6": dict(seed=31, tasks=("read",), one_tile_pages=True),
    "data-stage7": dict(seed=34, tasks=("read",), one_tile_pages=True, train_turns=1),
    "data-stage8-read": dict(seed=35, tasks=("read",), train_turns=1),
    "data-stage8-mix": dict(seed=33, tasks=(*V.TASKS, "describe"),
                            weights={"count": 1.0, "color": 1.0, "shape": 1.5, "position": 1.0, "describe": 1.5,
                                     "read": 4.0, "chart": 0.5}),
    "data-stage9": dict(seed=36, tasks=(*V.TASKS, "describe"),
                        weights={"count": 1.5, "color": 1.0, "shape": 1.5, "position": 1.0, "describe": 1.5,
                                 "read": 1.5, "chart": 0.5}),
}
# Stages 10-11 run stages 7-8 again on fresh data (reading was still rising when each stage stopped).
DATA |= {"data-stage10": {**DATA["data-stage7"], "seed": 37},
         "data-stage11-read": {**DATA["data-stage8-read"], "seed": 38},
         "data-stage11-mix": {**DATA["data-stage8-mix"], "seed": 39}}
# Stages 12-13 run them once more with numbers in most cells (after stage 11, 77 of 78 held-out boxed words were
# read right and 2 of 22 numbers: a number needs its three digits right, and 80 % of the cells were words).
DATA |= {"data-stage12": {**DATA["data-stage7"], "seed": 45, "number_fraction": 0.7},
         "data-stage13-read": {**DATA["data-stage8-read"], "seed": 46, "number_fraction": 0.5},
         "data-stage13-mix": {**DATA["data-stage8-mix"], "seed": 47}}
# Stages 14-17 teach the model to answer from the question's key (which place, colour or kind), not from the
# image alone: shape scenes whose answers copy the key first, then only its last word, then plain answers (the
# same scenes), then plain answers on fresh scenes; stages 18-19 run stage 13 twice more on fresh data to bring
# back the reading that 1,300 steps of shape scenes wore down.
KEY_WEIGHTS = {"count": 0.5, "color": 1.0, "shape": 1.0, "position": 1.0, "describe": 1.0}
DATA |= {"data-stage14": dict(seed=100, tasks=SHAPE_TASKS, weights=KEY_WEIGHTS, key_echo="full"),
         "data-stage15": dict(seed=101, tasks=SHAPE_TASKS, weights=KEY_WEIGHTS, key_echo="partial"),
         "data-stage16": dict(seed=101, tasks=SHAPE_TASKS, weights=KEY_WEIGHTS),
         "data-stage17": dict(seed=104, tasks=SHAPE_TASKS, weights=KEY_WEIGHTS),
         "data-stage18-read": {**DATA["data-stage13-read"], "seed": 48},
         "data-stage18-mix": {**DATA["data-stage13-mix"], "seed": 49},
         "data-stage19-read": {**DATA["data-stage13-read"], "seed": 50},
         "data-stage19-mix": {**DATA["data-stage13-mix"], "seed": 51}}
# Stages 20-25 teach position questions to use their key (the stage-19 model answered the same place for every
# shape of a scene): the training-only `locate` task lists every shape's place by colour then kind, and position
# answers copy the key in full (`red circle: top left`), then its last word, then not at all; stage 20 at up to
# 12 tiles, 21-25 at one tile, where a step is ~3x cheaper. Stages 26-29 run stage 13's mix four times on fresh
# data to win back the reading those 2,800 steps without a page erased (docs/bundled-model/history.md, twelfth
# and thirteenth sessions).
PLACE_TASKS = (*SHAPE_TASKS, "locate")
PLACE_WEIGHTS = {"count": 0.5, "color": 1.0, "shape": 0.5, "position": 2.0, "describe": 1.0, "locate": 3.0}
DATA |= {"data-stage20": dict(seed=120, tasks=PLACE_TASKS, weights={**KEY_WEIGHTS, "position": 1.5, "locate": 1.0},
                              key_echo="full"),
         "data-stage21": dict(seed=130, tasks=PLACE_TASKS, weights=PLACE_WEIGHTS, key_echo="full"),
         "data-stage22": dict(seed=131, tasks=PLACE_TASKS, weights=PLACE_WEIGHTS, key_echo="full"),
         "data-stage23": dict(seed=132, tasks=PLACE_TASKS, weights=PLACE_WEIGHTS, key_echo="partial"),
         "data-stage24": dict(seed=132, tasks=PLACE_TASKS, weights=PLACE_WEIGHTS),
         "data-stage25": dict(seed=134, tasks=PLACE_TASKS, weights=PLACE_WEIGHTS)}
# Stages 30-31 teach count by colour to use its key (the stage-29 model gave one number for every colour of a
# scene) the same way, with the training-only `tally` task (`red: 2` for every colour), counts that copy their
# key and then plain answers, at one tile, with one-tile pages mixed in so that reading survives; stage 32 runs
# stage 13's mix once more (thirteenth session).
TALLY_TASKS = (*SHAPE_TASKS, "tally")
TALLY_WEIGHTS = {"count": 2.0, "color": 1.0, "shape": 0.5, "position": 1.0, "describe": 1.0, "tally": 3.0}


def _with_pages(stage: int, seed: int, **shapes) -> dict[str, dict]:
    """A one-tile stage's data: shape scenes (data seed ``seed``) and fresh one-tile reading pages (stage 12's,
    data seed ``seed + 1``), so that reading survives the shape stage."""
    return {f"data-stage{stage}-shapes": dict(seed=seed, **shapes),
            f"data-stage{stage}-pages": {**DATA["data-stage12"], "seed": seed + 1}}


DATA |= _with_pages(30, 140, tasks=TALLY_TASKS, weights=TALLY_WEIGHTS, key_echo="full", echo_counts=True)
DATA |= _with_pages(31, 142, tasks=TALLY_TASKS, weights=TALLY_WEIGHTS)
# Stages 33-34 teach colour by kind to use its key (the stage-32 model answered every kind of a scene with one
# colour) with the training-only `paint` task (`circle: red` for every shape), colours that copy their key and then
# plain answers, at one tile with one-tile pages; stage 35 is stage 13's mix again (fourteenth session).
PAINT_TASKS = (*SHAPE_TASKS, "tally", "paint")
PAINT_WEIGHTS = {"count": 1.0, "color": 2.0, "shape": 0.5, "position": 1.0, "describe": 1.0, "tally": 1.0,
                 "paint": 3.0}
DATA |= _with_pages(33, 150, tasks=PAINT_TASKS, weights=PAINT_WEIGHTS, key_echo="full")
DATA |= _with_pages(34, 152, tasks=PAINT_TASKS, weights=PAINT_WEIGHTS)
# Stages 36-37 teach count by kind the same way with `tally_kind` (`circles: 2` for every kind; the stage-35 model
# answered 1 for two circles), at one tile with one-tile pages; stage 38 is stage 13's mix again (fourteenth
# session).
KIND_TASKS = (*SHAPE_TASKS, "tally", "paint", "tally_kind")
KIND_WEIGHTS = {"count": 2.0, "color": 1.0, "shape": 0.5, "position": 1.0, "describe": 1.0, "tally": 1.0,
                "paint": 1.0, "tally_kind": 3.0}
DATA |= _with_pages(36, 170, tasks=KIND_TASKS, weights=KIND_WEIGHTS, key_echo="full", echo_counts=True)
DATA |= _with_pages(37, 172, tasks=KIND_TASKS, weights=KIND_WEIGHTS)
# Before stage 39 the tokenizer gets the two-word places as single tokens (`PHRASES_BEFORE`): the stage-38 model
# answered "Where is the red star?" with the right row and a row-mate's column, the second word looked up from the
# first. Stage 39 teaches the new tokens with every task that names a place, at one tile with one-tile pages;
# stage 40 is stage 13's mix again (fifteenth session).
PHRASES_BEFORE = "stage39"
PHRASE_TASKS = (*SHAPE_TASKS, "locate", "tally", "paint", "tally_kind")
PHRASE_WEIGHTS = {"count": 1.0, "color": 1.0, "shape": 1.0, "position": 2.0, "describe": 1.0, "locate": 2.0,
                  "tally": 0.5, "paint": 0.5, "tally_kind": 1.0}
DATA |= _with_pages(39, 180, tasks=PHRASE_TASKS, weights=PHRASE_WEIGHTS)
# Stage 41 asks 60 % of the count and colour questions in Chinese (25 % elsewhere), colour and count up: the
# stage-40 model named the colour of a kind 99 % right in English and 62 % in Chinese; stage 42 is stage 13's mix
# again (fifteenth session).
ZH_WEIGHTS = {"count": 2.0, "color": 2.0, "shape": 0.5, "position": 1.0, "describe": 1.0, "locate": 0.5,
              "tally": 0.5, "paint": 1.0, "tally_kind": 2.0}
DATA |= _with_pages(41, 190, tasks=PHRASE_TASKS, weights=ZH_WEIGHTS, zh_fraction=0.6)
# Stage 43 draws half its scenes with one or two kinds in several colours (`kind_repeats`), their count questions
# by kind: the stage-42 model answered "How many stars?" with 1 for two clear stars of two colours; stage 44 is
# stage 13's mix again (sixteenth session).
REPEAT_WEIGHTS = {"count": 3.0, "color": 2.0, "shape": 0.5, "position": 1.0, "describe": 1.0, "locate": 0.5,
                  "tally": 1.0, "paint": 1.0, "tally_kind": 2.0}
DATA |= _with_pages(43, 220, tasks=PHRASE_TASKS, weights=REPEAT_WEIGHTS, kind_repeats=0.5)
ONE_TILE_STAGES = (30, 31, 33, 34, 36, 37, 39, 41, 43)  # shape scenes with one-tile pages (`_with_pages`)
# stage: (pages, mix data seed)
MIX_PASSES = {26: (56, 57), 27: (58, 59), 28: (60, 61), 29: (62, 63), 32: (66, 67), 35: (68, 69), 38: (70, 71),
              40: (72, 73), 42: (74, 75), 44: (76, 77)}
for _n, (_read, _mix) in MIX_PASSES.items():
    DATA |= {f"data-stage{_n}-read": {**DATA["data-stage13-read"], "seed": _read},
             f"data-stage{_n}-mix": {**DATA["data-stage13-mix"], "seed": _mix}}
COMMON = dict(tile_size=112, chinese=True, number_fraction=0.2, train_turns=6)
# (stage = run directory and recipe name, its training data: one directory or several), in training order.
STAGES = (("stage1", "data-stage1"), ("stage2", "data-stage2"), ("stage3", "data-stage3"),
          ("stage4", "data-stage4"), ("stage5", "data-stage5"), ("stage6", "data-stage6"),
          ("stage7", "data-stage7"), ("stage8", ("data-stage8-read", "data-stage8-mix")), ("stage9", "data-stage9"),
          ("stage10", "data-stage10"), ("stage11", ("data-stage11-read", "data-stage11-mix")),
          ("stage12", "data-stage12"), ("stage13", ("data-stage13-read", "data-stage13-mix")),
          ("stage14", "data-stage14"), ("stage15", "data-stage15"), ("stage16", "data-stage16"),
          ("stage17", "data-stage17"), ("stage18", ("data-stage18-read", "data-stage18-mix")),
          ("stage19", ("data-stage19-read", "data-stage19-mix")),
          *((f"stage{n}", f"data-stage{n}") for n in range(20, 26)),
          # from stage 26 on every stage is a mix pass or a one-tile stage with pages
          *((f"stage{n}", tuple(f"data-stage{n}-{part}" for part in
                                (("read", "mix") if n in MIX_PASSES else ("shapes", "pages"))))
            for n in sorted({*MIX_PASSES, *ONE_TILE_STAGES})))
SIZES = {"data-stage1": 10000, "data-stage2": 12000, "data-stage3": 8000, "data-stage4": 12800,
         "data-stage5": 24000, "data-stage6": 24000, "data-stage7": 24000, "data-stage8-read": 6400,
         "data-stage8-mix": 12800, "data-stage9": 6400, "data-stage10": 32000, "data-stage11-read": 6400,
         "data-stage11-mix": 12800, "data-stage12": 32000, "data-stage13-read": 6400, "data-stage13-mix": 12800,
         "data-stage14": 12800, "data-stage15": 12800, "data-stage16": 12800, "data-stage17": 9600,
         "data-stage18-read": 6400, "data-stage18-mix": 12800, "data-stage19-read": 6400, "data-stage19-mix": 12800,
         "data-stage20": 12800, "data-stage21": 19200, "data-stage22": 19200, "data-stage23": 9600,
         "data-stage24": 9600, "data-stage25": 19200,
         **{f"data-stage{n}-{part}": size for n in ONE_TILE_STAGES for part, size in (("shapes", 12800), ("pages", 6400))},
         **{f"data-stage{n}-{part}": size for n in MIX_PASSES for part, size in (("read", 6400), ("mix", 12800))}}


def make_data(out: Path, sizes: dict[str, int], n_test: int, workers: int) -> None:
    """Write each stage's training data and the held-out split (skipping what is already there)."""
    for name, args in DATA.items():
        if not (out / name / "meta_train.json").exists():
            generate(out / name, n_train=sizes[name], n_test=0, workers=workers, **{**COMMON, **args})
    if not (out / "data-test" / "meta_test.json").exists():  # the same held-out images as every earlier build
        generate(out / "data-test", n_train=0, n_test=n_test, seed=0, workers=workers, **COMMON)


def meta_path(out: Path, stage: str, data: str | tuple[str, ...]) -> Path:
    """The stage's training meta file: the data directory's own, or for several directories one written here
    (``meta-<stage>.json``) that lists them all."""
    if isinstance(data, str):
        return out / data / "meta_train.json"
    merged = {}
    for name in data:
        entry = json.loads((out / name / "meta_train.json").read_text(encoding="utf-8"))["synth_train"]
        merged[name.removeprefix("data-")] = entry
    path = out / f"meta-{stage}.json"
    path.write_text(json.dumps(merged, indent=2), encoding="utf-8")
    return path


def build(out: Path, *, sizes: dict[str, int], n_test: int, workers: int,
          overrides: dict[str, list[str]] | None = None) -> Path:
    """Run steps 1-3; returns the final checkpoint directory. ``overrides``: recipe key=value per stage name."""
    out.mkdir(parents=True, exist_ok=True)
    make_data(out, sizes, n_test, workers)
    tok = out / "tokenizer"
    if not (tok / "tokenizer.model").exists():
        train_tokenizer(tok, text_corpus(chinese=True, describe=True), vocab_size=1000)

    previous = None
    for stage, data in STAGES:
        run_dir = out / stage
        if stage == PHRASES_BEFORE:
            with_phrases = out / f"{stage}-phrases"
            if not (with_phrases / "model.safetensors").exists():
                extend_checkpoint(previous, with_phrases)
            previous = with_phrases
        start = [f"model.tokenizer_path={tok}"] if previous is None else [f"model.model_name_or_path={previous}"]
        config = TrainConfig.from_yaml(f"tessera-tiny-{stage}", [
            *start, f"data.meta_path={meta_path(out, stage, data)}",
            f"run.output_dir={run_dir}", f"run.resume={'true' if run_dir.exists() else 'false'}",
            *(overrides or {}).get(stage, []),
        ])
        previous = run_dir / "final"
        if not previous.exists():
            run_training(config)
    return previous


def ablation(ckpt: Path, data: Path, out: Path, tiles: str = "1,4,12", device: str = "cpu") -> Path:
    """``tessera eval --bench synth --max-tiles 1,4,12`` on the held-out split; returns the eval directory."""
    from ..eval.cli import main as eval_main

    code = eval_main(["--model", str(ckpt), "--bench", "synth", "--data", str(data), "--out", str(out),
                      "--max-tiles", tiles, "--batch-size", "16", "--device", device, "--dtype", "float32"])
    if code:
        raise RuntimeError(f"tessera eval exited with {code}")
    return out


def plot_tasks(eval_dir: Path, out_png: Path) -> Path:
    """Per-task held-out accuracy at each max_tiles (grouped bars), with the issue's targets as ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [json.loads(f.read_text()) for f in eval_dir.glob("synth/tiles-*/scores.json")]
    per_tile = {r["max_tiles"]: r["metrics"]["per_task"] for r in sorted(results, key=lambda r: r["max_tiles"])}
    targets = {"count": 95, "color": 95, "position": 95, "read": 80}
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(len(per_tile), 1)
    for k, (tiles, scores) in enumerate(per_tile.items()):
        xs = [i + (k - (len(per_tile) - 1) / 2) * width for i in range(len(V.TASKS))]
        ax.bar(xs, [scores.get(t, 0) for t in V.TASKS], width, label=f"max_tiles {tiles}")
    for i, task in enumerate(V.TASKS):
        if task in targets:
            ax.plot([i - 0.45, i + 0.45], [targets[task]] * 2, "k--", lw=1)
    ax.set_xticks(range(len(V.TASKS)), V.TASKS)
    ax.set_ylim(0, 100)
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("tessera-tiny on the held-out synthetic split (dashed: targets)")
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def install(ckpt: Path, eval_dir: Path, repo: Path) -> None:
    """Copy the model into the package, and the ablation report/plot and each stage's loss curve into docs/."""
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
    for scores in eval_dir.glob("synth/tiles-*/scores.json"):
        shutil.copy2(scores, docs / f"scores-{scores.parent.name}.json")
    plot_tasks(eval_dir, docs / "per_task.png")
    for stage, _ in STAGES:
        curve = ckpt.parent.parent / stage / "loss.png"
        if curve.exists():
            shutil.copy2(curve, docs / f"{stage}-loss.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build tessera's bundled model (data, tokenizer, stages, ablation).")
    ap.add_argument("--out", default="runs/tessera-tiny", help="work directory (resumable)")
    for data, n in SIZES.items():
        ap.add_argument(f"--{data.removeprefix('data-')}", type=int, default=n,
                        help=f"training images in {data} (default {n})")
    ap.add_argument("--test", type=int, default=600, help="held-out images (100 per task)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--install", action="store_true", help="copy the result into the package and docs/")
    ap.add_argument("--device", default="cpu",
                    help="train and evaluate here (cpu as shipped; cuda: the same recipes, bf16 training)")
    for stage, _ in STAGES:
        ap.add_argument(f"--{stage}-override", action="append", default=[],
                        help=f"key=value for the {stage} recipe (repeatable)")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    start = time.time()
    sizes = {data: getattr(args, data.removeprefix("data-").replace("-", "_")) for data in SIZES}
    on_device = [] if args.device == "cpu" else [f"run.device={args.device}", "run.precision=auto"]
    overrides = {stage: [*on_device, *getattr(args, f"{stage}_override")] for stage, _ in STAGES}
    final = build(out, sizes=sizes, n_test=args.test, workers=args.workers, overrides=overrides)
    eval_dir = ablation(final, out / "data-test", out / "eval", device=args.device)
    (out / "build.json").write_text(json.dumps({"final": str(final), "seconds": time.time() - start}, indent=2))
    if args.install:
        install(final, eval_dir, Path.cwd())
    print(f"done in {(time.time() - start) / 60:.1f} min: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
