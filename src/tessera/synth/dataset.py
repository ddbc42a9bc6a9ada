"""Write a synthetic dataset in the official InternVL meta + JSONL format.

Layout of ``out_dir``::

    images/train/train_0000000.png ...   images/test/test_0000000.png ...
    train.jsonl  test.jsonl               one sample per line (id, image, width, height, conversations, task, tasks)
    meta_train.json  meta_test.json       {"synth_train": {"root", "annotation", "data_augment", "repeat_time", "length"}}
    synth_config.json                     the SynthConfig, seed and fonts used

Sample ``i`` of split ``s`` depends only on (config, seed, s, i): it draws from its own RNG, so the output is
the same with any number of worker processes, and a larger ``n_train`` extends a smaller one.
Train samples carry 1..train_turns question/answer turns about the same image (tasks drawn by weight);
test samples carry exactly one turn, with tasks taken round-robin so every task is equally represented.
"""

from __future__ import annotations

import hashlib
import json
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from . import chart, document, shapes
from . import vocab as V
from .fonts import cjk_font_path, font_info

SPLITS = ("train", "test")
DEFAULT_WEIGHTS = {"count": 1.0, "color": 1.0, "shape": 1.0, "position": 1.0, "read": 2.0, "chart": 1.0,
                   "describe": 1.0}


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator (all pixel sizes in image pixels).

    tile_size: the model's tile side; pages and charts are whole multiples of it.
    max_tiles: the model's max_dynamic_patch; pages/charts never need more tiles than this.
    tasks: which tasks to generate (subset of vocab.TASKS + vocab.TRAIN_TASKS; the training-only tasks are left
        out of the test split, and each of their samples has that one turn).
    weights: relative frequency of each task as the first turn of a train sample.
    train_turns: up to this many Q/A turns per train image (test: always 1).
    text_px: page text height; legible in full tiles, not when the page is squashed into one tile.
    number_fraction: share of page cells holding a three-digit number instead of a word.
    chart_text_px: chart label/value text height.
    doc_min_tiles: smallest page grid (cols*rows); >= 6 keeps every page squashed >= 3x in one tile.
    chinese: Chinese phrasings for some count/colour questions; None = on iff a CJK font is installed.
    zh_fraction: share of count/colour turns asked in Chinese when ``chinese``.
    max_shapes: most shapes in a scene (fewer makes an easier curriculum stage).
    big_shapes: one shape filling most of the image (the easiest curriculum stage).
    one_tile_pages: pages of exactly one tile, seen unsquashed at any max_tiles (the first reading stage: the
        words at the size they have in a full page's tiles, with no page to search).
    describe_sep: what separates a describe line's place from the shape (": " as shipped, "top left: red
        circle"; " " puts the colour right after the place's last word, so it is predicted at that token: the
        place is looked up where the answer is read, which a from-scratch model learns far faster than a
        lookup one token later, see ``benchmarks/learnability.py --cell-last``; in 800 steps of scenes it
        gained colour-by-place a few points, docs/bundled-model/history.md).
    key_echo: training only: answers to the English shape questions that name a shape by its place, colour or
        kind copy that key first ("full": "top left: red"; "partial": its last word, "left: red"; "none": "red",
        the benchmark's form). A from-scratch LLM answers such questions without reading the key (it gives one
        colour for every place asked); taught to write the key out, then half of it, then none, it learns to
        carry it to the answer (colour by place 38 % -> 98 % at one tile; docs/bundled-model/history.md, tenth session).
    echo_counts: with ``key_echo``, counts by colour or kind copy their key too ("red: 2", "circles: 1").
    row_mates: training only: position questions ask a shape that shares its row with another shape whenever
        the scene has one. Those are the position questions a model gets wrong: it finds the row and then takes
        the column of any shape in it (52 % right with row-mates, 95 % alone in the row; the misses name a
        row-mate's place; docs/bundled-model/history.md, fourteenth session).
    kind_repeats: training only: this fraction of shape scenes holds 2..max_shapes shapes of only one or two
        kinds, so a kind comes in several colours, and their count questions ask by kind. "How many stars?"
        was answered "1" for two clear stars of two colours (docs/bundled-model/history.md, fifteenth session).
    """

    tile_size: int = 112
    max_tiles: int = 12
    tasks: tuple[str, ...] = V.TASKS
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    train_turns: int = 3
    text_px: int = 12
    number_fraction: float = 0.35
    chart_text_px: int = 14
    doc_min_tiles: int = 6
    chinese: bool | None = None
    zh_fraction: float = 0.25
    max_shapes: int = V.MAX_SHAPES
    big_shapes: bool = False
    one_tile_pages: bool = False
    describe_sep: str = ": "
    key_echo: str = "none"
    echo_counts: bool = False
    row_mates: bool = False
    kind_repeats: float = 0.0

    def resolved(self) -> SynthConfig:
        """Check the values and fix ``chinese`` (None -> whether a CJK font is installed)."""
        known = V.TASKS + V.TRAIN_TASKS
        unknown = [t for t in self.tasks if t not in known]
        if unknown or not self.tasks:
            raise ValueError(f"unknown or no tasks {unknown or self.tasks}; choose from {known}")
        if self.tile_size < 28 or self.tile_size % 14:
            raise ValueError(f"tile_size={self.tile_size} must be a multiple of 14 (the patch size), >= 28")
        if not all(0 <= f <= 1 for f in (self.number_fraction, self.zh_fraction, self.kind_repeats)):
            raise ValueError(f"number_fraction, zh_fraction and kind_repeats must be in [0, 1]; got {self}")
        if self.describe_sep not in (": ", " "):
            raise ValueError(f"describe_sep={self.describe_sep!r} must be ': ' or ' '")
        if self.key_echo not in shapes.KEY_ECHOES:
            raise ValueError(f"key_echo={self.key_echo!r} must be one of {shapes.KEY_ECHOES}")
        if self.train_turns < 1:
            raise ValueError(f"train_turns={self.train_turns} must be >= 1")
        if not 1 <= self.max_shapes <= V.MAX_SHAPES:
            raise ValueError(f"max_shapes={self.max_shapes} must be in 1..{V.MAX_SHAPES}")
        if any(self.weights.get(t, 0) <= 0 for t in self.tasks):
            raise ValueError(f"every task in {self.tasks} needs a positive weight; got {self.weights}")
        if "read" in self.tasks:
            self.page_grids()  # raises if impossible
            document.cell_layout(self.tile_size, self.text_px)
        chinese = self.chinese if self.chinese is not None else cjk_font_path() is not None
        return replace(self, tasks=tuple(self.tasks), chinese=bool(chinese))

    def page_grids(self) -> list[tuple[int, int]]:
        """The tile grids (cols, rows) a page is drawn on: one tile with ``one_tile_pages``, else
        :func:`document.page_grids` (raises if max_tiles and doc_min_tiles leave none)."""
        return [(1, 1)] if self.one_tile_pages else document.page_grids(self.max_tiles, self.doc_min_tiles)


def sample_rng(seed: int, split: str, index: int) -> random.Random:
    """The private RNG of one sample (stable across Python versions, processes and hash seeds)."""
    digest = hashlib.sha256(f"tessera.synth/{seed}/{split}/{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def make_sample(cfg: SynthConfig, seed: int, split: str, index: int) -> tuple[Image.Image, list[tuple[str, str, str]]]:
    """Build sample ``index`` of ``split``: its image and its (task, question, answer) turns."""
    rng = sample_rng(seed, split, index)
    if split == "test":
        bench = [t for t in cfg.tasks if t in V.TASKS]
        first, n_turns = bench[index % len(bench)], 1
    else:
        first = rng.choices(cfg.tasks, weights=[cfg.weights[t] for t in cfg.tasks])[0]
        n_turns = 1 if first in V.TRAIN_TASKS else rng.randint(1, cfg.train_turns)
    kind = V.TASK_KIND[first]
    if kind == "document":  # one turn per marked box, and there are len(BOX_COLORS) box colours
        n_turns = min(n_turns, len(V.BOX_COLORS))
    # A description in the same chat would let later answers be copied from it instead of read from the image.
    same_kind = [t for t in cfg.tasks if V.TASK_KIND[t] == kind and t not in V.TRAIN_TASKS]
    turn_tasks = [first] + [rng.choice(same_kind) for _ in range(n_turns - 1)]

    if kind == "shapes":
        repeat = split == "train" and cfg.kind_repeats > 0 and rng.random() < cfg.kind_repeats
        image, scene = shapes.draw_scene(rng, cfg.tile_size, cfg.max_shapes, cfg.big_shapes, repeat_kinds=repeat)

        def ask(task: str) -> tuple[str, str, tuple]:
            zh = cfg.chinese and task in ("count", "color") and rng.random() < cfg.zh_fraction
            echo = "none" if split == "test" else cfg.key_echo
            return shapes.ask(rng, scene, task, chinese=zh, describe_sep=cfg.describe_sep, key_echo=echo,
                              echo_counts=cfg.echo_counts, row_mates=cfg.row_mates and split == "train",
                              count_kinds=repeat)
    elif kind == "document":
        grids = cfg.page_grids()
        colors = ["red"] if split == "test" else rng.sample(list(V.BOX_COLORS), n_turns)
        image, boxes = document.draw_page(rng, cfg.tile_size, cfg.text_px, grids, colors, cfg.number_fraction)
        box_iter = iter(boxes)

        def ask(task: str) -> tuple[str, str, tuple]:
            return document.ask(rng, next(box_iter))
    else:
        image, scene = chart.draw_chart(rng, cfg.tile_size, cfg.chart_text_px, cfg.max_tiles)

        def ask(task: str) -> tuple[str, str, tuple]:
            return chart.ask(rng, scene)

    turns, asked = [], set()
    for task in turn_tasks:
        for _ in range(8):  # re-draw a question about a fact already asked (in any phrasing)
            question, answer, fact = ask(task)
            if fact not in asked:
                break
        if fact in asked:
            continue
        asked.add(fact)
        turns.append((task, question, answer))
    return image, turns


def record(sample_id: str, image_rel: str, image: Image.Image, turns: list[tuple[str, str, str]]) -> dict:
    """The JSONL record of a sample: conversations alternate human/gpt, ``<image>`` once in the first turn."""
    conversations = []
    for i, (_, question, answer) in enumerate(turns):
        conversations.append({"from": "human", "value": ("<image>\n" if i == 0 else "") + question})
        conversations.append({"from": "gpt", "value": answer})
    return {
        "id": sample_id,
        "image": image_rel,
        "width": image.width,
        "height": image.height,
        "conversations": conversations,
        "task": turns[0][0],
        "tasks": [t for t, _, _ in turns],
    }


def _build(job: tuple[SynthConfig, int, str, int, str]) -> str:
    """Worker: make one sample, save its PNG, return its JSONL line."""
    cfg, seed, split, index, out_dir = job
    image, turns = make_sample(cfg, seed, split, index)
    sample_id = f"{split}_{index:07d}"
    rel = f"images/{split}/{sample_id}.png"
    image.save(Path(out_dir) / rel, format="PNG")
    return json.dumps(record(sample_id, rel, image, turns), ensure_ascii=False)


def generate(
    out_dir: str | Path,
    *,
    n_train: int,
    n_test: int,
    seed: int = 0,
    tile_size: int = 112,
    tasks: tuple[str, ...] = V.TASKS,
    workers: int = 1,
    progress: bool = True,
    **options,
) -> dict[str, Path]:
    """Generate ``n_train`` + ``n_test`` samples into ``out_dir``; returns the paths of the written files.

    ``options`` are the other :class:`SynthConfig` fields (max_tiles, weights, train_turns, text_px, chinese, ...).
    Same arguments -> byte-identical JSONL files and identical PNGs, whatever ``workers`` is.
    """
    if n_train < 0 or n_test < 0:
        raise ValueError(f"sample counts must be >= 0, got n_train={n_train}, n_test={n_test}")
    cfg = SynthConfig(tile_size=tile_size, tasks=tuple(tasks), **options).resolved()
    if n_test and not any(t in V.TASKS for t in cfg.tasks):
        raise ValueError(f"tasks {cfg.tasks} are training-only: a test split needs one of {V.TASKS} (or n_test=0)")
    out = Path(out_dir).resolve()
    jobs = []
    for split, n in zip(SPLITS, (n_train, n_test)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        jobs += [(cfg, seed, split, i, str(out)) for i in range(n)]

    lines: dict[str, list[str]] = {split: [] for split in SPLITS}
    bar = tqdm(total=len(jobs), desc="synth", unit="img", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for job, line in zip(jobs, pool.map(_build, jobs, chunksize=16)):
                lines[job[2]].append(line)
                bar.update()
    else:
        for job in jobs:
            lines[job[2]].append(_build(job))
            bar.update()
    bar.close()

    paths = {}
    for split in SPLITS:
        annotation = out / f"{split}.jsonl"
        annotation.write_text("".join(line + "\n" for line in lines[split]), encoding="utf-8")
        meta = {
            f"synth_{split}": {
                "root": str(out),
                "annotation": str(annotation),
                "data_augment": False,
                "repeat_time": 1,
                "length": len(lines[split]),
            }
        }
        paths[split] = annotation
        paths[f"meta_{split}"] = out / f"meta_{split}.json"
        paths[f"meta_{split}"].write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    info = {"seed": seed, "n_train": n_train, "n_test": n_test, "config": asdict(cfg), "fonts": font_info()}
    paths["config"] = out / "synth_config.json"
    paths["config"].write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths
