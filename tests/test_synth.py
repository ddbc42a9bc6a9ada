"""tessera.synth: dataset format, determinism, task mix, label correctness, tokenizer files."""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from PIL import Image, ImageDraw

from tessera.synth import TASKS, generate, text_corpus, train_tokenizer, write_examples
from tessera.synth import spm_proto as P
from tessera.synth import vocab as V
from tessera.synth.__main__ import main as cli_main
from tessera.synth.document import cell_layout
from tessera.synth.fonts import text_font
from tessera.synth.tokenizer import CHAT_PIECES, INTERNVL_TOKENS

from conftest import REPO, conformance_path

N_TRAIN, N_TEST = 14, 12  # 12 = two test samples per task


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, n_train=N_TRAIN, n_test=N_TEST, seed=3, progress=False, chinese=True)
    return out


def _records(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_files_follow_the_internvl_format(dataset):
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        meta = json.loads((dataset / f"meta_{split}.json").read_text())
        assert list(meta) == [f"synth_{split}"]
        entry = meta[f"synth_{split}"]
        assert set(entry) == {"root", "annotation", "data_augment", "repeat_time", "length"}
        assert entry["annotation"].endswith(".jsonl") and entry["length"] == n
        assert entry["data_augment"] is False and entry["repeat_time"] == 1
        records = _records(dataset, split)
        assert len(records) == n and len({r["id"] for r in records}) == n
        for r in records:
            path = Path(entry["root"]) / r["image"]
            assert r["image"] == f"images/{split}/{r['id']}.png"
            with Image.open(path) as im:
                assert im.mode == "RGB" and im.size == (r["width"], r["height"])
            conv = r["conversations"]
            assert len(conv) >= 2 and len(conv) % 2 == 0
            assert [c["from"] for c in conv] == ["human", "gpt"] * (len(conv) // 2)
            assert conv[0]["value"].startswith("<image>\n")
            assert sum(c["value"].count("<image>") for c in conv) == 1
            assert all(c["value"].strip() == c["value"] and c["value"] for c in conv[1:])
            assert r["task"] == r["tasks"][0] and len(r["tasks"]) == len(conv) // 2
            assert set(r["tasks"]) <= set(TASKS)
            if split == "test":
                assert len(conv) == 2


def test_task_mix(dataset):
    test = _records(dataset, "test")
    assert Counter(r["task"] for r in test) == {t: N_TEST // len(TASKS) for t in TASKS}
    train = _records(dataset, "train")
    assert any(len(r["conversations"]) > 2 for r in train), "train samples should have several turns"
    for r in train:  # all turns of one image ask about the same kind of image
        assert len({V.TASK_KIND[t] for t in r["tasks"]}) == 1


def test_task_subset_and_chinese_switch(tmp_path):
    generate(tmp_path, n_train=12, n_test=4, seed=0, tasks=("count", "read"), progress=False, chinese=False)
    records = _records(tmp_path, "train") + _records(tmp_path, "test")
    assert {t for r in records for t in r["tasks"]} == {"count", "read"}
    text = (tmp_path / "train.jsonl").read_text(encoding="utf-8")
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_same_seed_same_bytes_any_workers(tmp_path, dataset):
    other = tmp_path / "again"
    generate(other, n_train=N_TRAIN, n_test=N_TEST, seed=3, progress=False, chinese=True, workers=2)
    for split in ("train", "test"):
        assert (other / f"{split}.jsonl").read_bytes() == (dataset / f"{split}.jsonl").read_bytes()
        for r in _records(dataset, split):
            a, b = Image.open(dataset / r["image"]), Image.open(other / r["image"])
            assert np.array_equal(np.asarray(a), np.asarray(b)), r["id"]
    different = tmp_path / "seed4"
    generate(different, n_train=N_TRAIN, n_test=0, seed=4, progress=False, chinese=True)
    assert (different / "train.jsonl").read_bytes() != (dataset / "train.jsonl").read_bytes()


def test_pages_are_whole_tile_grids(dataset):
    for r in _records(dataset, "train") + _records(dataset, "test"):
        if r["task"] == "read":
            cols, rows = r["width"] / 112, r["height"] / 112
            assert cols.is_integer() and rows.is_integer()
            assert 6 <= cols * rows <= 12 and min(cols, rows) >= 2


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask (list of (N, 2) pixel coordinate arrays)."""
    seen = np.zeros_like(mask)
    out = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        queue, pixels = deque([start]), []
        while queue:
            y, x = queue.popleft()
            pixels.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        out.append(np.array(pixels))
    return out


def _shape_blobs(image: Image.Image) -> list[tuple[str, str]]:
    """(colour name, 3x3 position name) of every shape, found from the pixels alone."""
    rgb = np.asarray(image).astype(int)
    background = np.median(rgb.reshape(-1, 3), axis=0)
    mask = np.abs(rgb - background).sum(-1) > 150
    blobs = []
    for pixels in _components(mask):
        if len(pixels) < 12:
            continue  # stray anti-aliasing pixels
        mean = rgb[pixels[:, 0], pixels[:, 1]].mean(0)
        color = min(V.COLORS, key=lambda c: np.abs(np.array(V.COLORS[c]) - mean).sum())
        cy, cx = pixels.mean(0)
        cell = 3 * int(3 * cy / image.height) + int(3 * cx / image.width)
        blobs.append((color, V.POSITIONS[cell]))
    return blobs


def test_shape_answers_match_the_pixels(dataset):
    checked = 0
    for r in _records(dataset, "train") + _records(dataset, "test"):
        if V.TASK_KIND[r["task"]] != "shapes":
            continue
        blobs = _shape_blobs(Image.open(dataset / r["image"]))
        conv = r["conversations"]
        for q, a in zip(conv[0::2], conv[1::2]):
            question, answer = q["value"].removeprefix("<image>\n"), a["value"]
            if question in V.Q_COUNT_ALL + V.Q_COUNT_ALL_ZH:
                assert answer == str(len(blobs)), (r["id"], question)
                checked += 1
            for pos in V.POSITIONS:
                if question == V.Q_COLOR_POS[0].format(pos=pos):
                    assert (answer, pos) in blobs, (r["id"], question)
                    checked += 1
            for color in V.COLORS:
                if question in [t.format(color=color) for t in V.Q_COUNT_COLOR]:
                    assert answer == str(sum(c == color for c, _ in blobs)), (r["id"], question)
                    checked += 1
    assert checked >= 3


def _box_interior(image: Image.Image, rgb: tuple[int, int, int]) -> Image.Image:
    """The inside of the box drawn in colour ``rgb``, found from its pixels."""
    arr = np.asarray(image).astype(int)
    ys, xs = np.nonzero(np.abs(arr - np.array(rgb)).sum(-1) < 40)
    assert len(ys), "box not found"
    return image.crop((xs.min() + 2, ys.min() + 2, xs.max() - 1, ys.max() - 1))


def test_read_answer_is_the_text_in_the_box(dataset):
    """The recorded answer renders closer to the box's content than any other page word does."""
    assert _check_read_answers(dataset) >= 2


def test_one_tile_pages_are_single_unsquashed_tiles(tmp_path):
    """The first reading stage: every page is one tile (one tile at any max_tiles, no thumbnail), answers right."""
    from tessera.preprocess import num_tiles

    generate(tmp_path, n_train=6, n_test=2, seed=9, tasks=("read",), one_tile_pages=True, train_turns=3,
             progress=False, chinese=False)
    records = _records(tmp_path, "train") + _records(tmp_path, "test")
    assert {(r["width"], r["height"]) for r in records} == {(112, 112)}
    assert num_tiles(112, 112, max_tiles=12, image_size=112) == 1
    assert _check_read_answers(tmp_path) >= 8


def _check_read_answers(dataset: Path) -> int:
    """Assert every read answer is the word in its box; returns how many were checked."""
    cell_w, cell_h, _ = cell_layout(112, 12)
    font = text_font(12)
    checked = 0
    for r in _records(dataset, "train") + _records(dataset, "test"):
        if r["task"] != "read":
            continue
        image = Image.open(dataset / r["image"])
        conv = r["conversations"]
        for q, a in zip(conv[0::2], conv[1::2]):
            color = next(c for c in V.BOX_COLORS if f" {c} box" in q["value"])
            crop = np.asarray(_box_interior(image, V.BOX_COLORS[color]).convert("L")).astype(float)

            def distance(text: str, crop=crop) -> float:
                canvas = Image.new("L", (cell_w, cell_h), 255)
                ImageDraw.Draw(canvas).text((cell_w / 2, cell_h / 2), text, fill=0, font=font, anchor="mm")
                ref = np.asarray(canvas.crop((2, 2, cell_w - 2, cell_h - 2))).astype(float)
                h, w = min(ref.shape[0], crop.shape[0]), min(ref.shape[1], crop.shape[1])
                return float(np.abs((ref[:h, :w] < 128) ^ (crop[:h, :w] < 128)).sum())

            others = [w for w in V.WORDS if w != a["value"]] + ["100", "472", "805", "999"]
            best_other = min(distance(w) for w in others if w != a["value"])
            assert distance(a["value"]) < best_other, (r["id"], q["value"], a["value"])
            checked += 1
    return checked


@pytest.fixture(scope="module")
def described(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("described")
    generate(out, n_train=24, n_test=8, seed=4, tasks=("count", "position", "describe"), train_turns=4,
             weights={"count": 1.0, "position": 1.0, "describe": 2.0}, progress=False, chinese=False)
    return out


def test_describe_is_a_training_only_turn_of_its_own(described):
    test = _records(described, "test")
    assert Counter(r["task"] for r in test) == {"count": 4, "position": 4}
    train = _records(described, "train")
    alone = [r for r in train if "describe" in r["tasks"]]
    assert alone and any(len(r["tasks"]) > 1 for r in train)
    for r in alone:  # a description beside other turns would let their answers be copied from it
        assert r["tasks"] == ["describe"]


def test_describe_lists_every_shape_as_the_pixels_show(described):
    checked = 0
    for r in _records(described, "train"):
        if r["task"] != "describe":
            continue
        answer = r["conversations"][1]["value"]
        rows = [line.split(": ") for line in answer.split("\n")]
        listed = [(what.split()[0], pos) for pos, what in rows]
        blobs = _shape_blobs(Image.open(described / r["image"]))
        assert sorted(listed) == sorted(blobs), (r["id"], answer)
        assert [V.POSITIONS.index(pos) for pos, _ in rows] == sorted(V.POSITIONS.index(pos) for pos, _ in rows)
        checked += 1
    assert checked >= 3


def test_describe_sep_changes_only_the_describe_lines(tmp_path, described):
    kwargs = dict(n_train=24, n_test=8, seed=4, tasks=("count", "position", "describe"), train_turns=4,
                  weights={"count": 1.0, "position": 1.0, "describe": 2.0}, progress=False, chinese=False)
    generate(tmp_path, describe_sep=" ", **kwargs)
    plain, colon = _records(tmp_path, "train"), _records(described, "train")
    assert len(plain) == len(colon) and any(r["task"] == "describe" for r in plain)
    for p, c in zip(plain, colon):
        if c["task"] == "describe":
            lines, plain_lines = (r["conversations"][1]["value"].split("\n") for r in (c, p))
            assert plain_lines == [line.replace(": ", " ") for line in lines]
            assert all(":" not in line and len(line.split()) in (3, 4) for line in plain_lines)
            p["conversations"] = c["conversations"]
        assert p == c
        assert (tmp_path / p["image"]).read_bytes() == (described / c["image"]).read_bytes()
    with pytest.raises(ValueError, match="describe_sep"):
        generate(tmp_path / "bad", describe_sep=" - ", **kwargs)


@pytest.fixture(scope="module")
def located(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("located")
    generate(out, n_train=32, n_test=8, seed=5, tasks=("color", "position", "locate"), train_turns=4,
             weights={"color": 1.0, "position": 1.0, "locate": 2.0}, progress=False, chinese=False)
    return out


def _own_turn_answers(out: Path, task: str, questions: tuple[str, ...]) -> list[tuple[list[list[str]], list]]:
    """(answer lines split at ``": "``, shapes seen in the pixels) of every training sample of a training-only
    task, each checked to be its own one-turn sample asking one of ``questions`` (a dense answer beside another
    question would give that question's answer away)."""
    found = []
    for r in _records(out, "train"):
        if task not in r["tasks"]:
            continue
        assert r["tasks"] == [task]
        assert r["conversations"][0]["value"].removeprefix("<image>\n") in questions
        rows = [line.split(": ") for line in r["conversations"][1]["value"].split("\n")]
        found.append((rows, _shape_blobs(Image.open(out / r["image"]))))
    assert len(found) >= 3
    return found


def test_locate_lists_every_shapes_place_by_colour_then_kind_as_the_pixels_show(located):
    assert Counter(r["task"] for r in _records(located, "test")) == {"color": 4, "position": 4}
    for rows, blobs in _own_turn_answers(located, "locate", V.Q_LOCATE):
        shapes_listed = [what.split() for what, _ in rows]
        order = [(list(V.COLORS).index(c), V.SHAPES.index(k)) for c, k in shapes_listed]
        assert order == sorted(order), rows  # by colour, then kind: the order does not give the place away
        assert sorted((c, pos) for (c, _), (_, pos) in zip(shapes_listed, rows)) == sorted(blobs), rows


def _training_only_data(tmp_path_factory, task: str, beside: str, seed: int) -> Path:
    """24 training images of the training-only ``task`` (weight 2) and the benchmark task ``beside`` (weight 1),
    up to 3 turns each."""
    out = tmp_path_factory.mktemp(task)
    generate(out, n_train=24, n_test=0, seed=seed, tasks=(beside, task), train_turns=3,
             weights={beside: 1.0, task: 2.0}, progress=False, chinese=False)
    return out


@pytest.fixture(scope="module")
def tallied(tmp_path_factory) -> Path:
    return _training_only_data(tmp_path_factory, "tally", "count", seed=6)


def test_tally_counts_every_colour_in_order_as_the_pixels_show(tallied):
    for rows, blobs in _own_turn_answers(tallied, "tally", V.Q_TALLY):
        assert [c for c, _ in rows] == list(V.COLORS)  # every colour, absent ones too, in a fixed order
        seen = Counter(c for c, _ in blobs)
        assert {c: int(n) for c, n in rows} == {c: seen[c] for c in V.COLORS}, rows


@pytest.fixture(scope="module")
def painted(tmp_path_factory) -> Path:
    return _training_only_data(tmp_path_factory, "paint", "color", seed=7)


def test_paint_lists_every_shapes_colour_by_kind_as_the_pixels_show(painted):
    for rows, blobs in _own_turn_answers(painted, "paint", V.Q_PAINT):
        order = [(V.SHAPES.index(k), list(V.COLORS).index(c)) for k, c in rows]
        assert order == sorted(order), rows  # by kind, then colour: the order gives no colour away
        assert sorted(c for _, c in rows) == sorted(c for c, _ in blobs), rows  # one line per shape seen


@pytest.fixture(scope="module")
def tallied_by_kind(tmp_path_factory) -> Path:
    return _training_only_data(tmp_path_factory, "tally_kind", "count", seed=8)


def test_tally_kind_counts_every_kind_in_order(tallied_by_kind):
    from tessera.synth.shapes import Shape, tally_kind

    scene = [Shape("star", "red", 0), Shape("circle", "blue", 4), Shape("star", "green", 8)]
    assert tally_kind(scene) == "circles: 1\nsquares: 0\ntriangles: 0\nstars: 2"
    for rows, blobs in _own_turn_answers(tallied_by_kind, "tally_kind", V.Q_TALLY_KIND):
        assert [k for k, _ in rows] == [V.SHAPES_PLURAL[k] for k in V.SHAPES]  # every kind, in a fixed order
        assert sum(int(n) for _, n in rows) == len(blobs), rows  # as many as the pixels show


def test_row_mates_asks_position_of_shapes_that_share_their_row(tmp_path):
    generate(tmp_path, n_train=40, n_test=12, seed=9, tasks=("position",), train_turns=1, row_mates=True,
             progress=False, chinese=False)
    crowded = 0
    for r in _records(tmp_path, "train"):
        blobs = _shape_blobs(Image.open(tmp_path / r["image"]))
        rows = Counter(V.POSITIONS.index(place) // 3 for _, place in blobs)
        if max(rows.values()) < 2:
            continue  # no two shapes share a row: any shape may be asked
        crowded += 1
        place = r["conversations"][1]["value"]
        assert rows[V.POSITIONS.index(place) // 3] >= 2, (place, blobs)
    assert crowded >= 10
    config = json.loads((tmp_path / "synth_config.json").read_text())["config"]
    assert config["row_mates"] is True  # recorded; the test split ignores it (it asks any shape)


def test_kind_repeats_draws_one_or_two_kinds_in_several_colours_and_counts_by_kind(tmp_path):
    import random

    from tessera.synth.shapes import draw_scene

    for seed in range(30):
        _, scene = draw_scene(random.Random(seed), 112, repeat_kinds=True)
        assert 2 <= len(scene) <= V.MAX_SHAPES and len({s.kind for s in scene}) <= 2, scene
        assert len({(s.color, s.kind) for s in scene}) == len(scene)  # "the red star" still names one shape
    kwargs = dict(n_train=40, n_test=8, seed=5, tasks=("count",), train_turns=1, progress=False, chinese=False)
    generate(tmp_path / "plain", **kwargs)
    generate(tmp_path / "rep", kind_repeats=1.0, **kwargs)
    assert _records(tmp_path / "plain", "test") == _records(tmp_path / "rep", "test")  # training only
    answers = []
    for r in _records(tmp_path / "rep", "train"):
        (question, answer), = _pairs(r)
        assert any(_matches(t, question.removeprefix("<image>\n")) for t in V.Q_COUNT_KIND), question
        blobs = _shape_blobs(Image.open(tmp_path / "rep" / r["image"]))
        assert 2 <= len(blobs) and int(answer) <= len(blobs), (question, answer, blobs)
        answers.append(int(answer))
    assert max(answers) >= 3 and min(answers) <= 1  # several of a kind, and kinds the scene lacks or has once
    with pytest.raises(ValueError, match="kind_repeats"):
        generate(tmp_path / "bad", kind_repeats=1.5, **kwargs)


def test_every_question_and_answer_is_in_the_corpus(dataset, described, located, tallied, painted, tallied_by_kind):
    corpus = set(text_corpus(chinese=True, describe=True, locate=True, tally=True, paint=True, tally_kind=True))
    assert V.SYSTEM_MESSAGE in corpus
    assert not set(text_corpus(chinese=True)) >= {"Describe the image.", "center: red star"}
    assert not set(text_corpus(chinese=True, describe=True)) >= {"Where is each shape?", "red star: center"}
    assert not set(text_corpus(chinese=True, locate=True)) >= {"Count the shapes of each color.", "red: 0"}
    for out in (dataset, described, located, tallied, painted, tallied_by_kind):
        for r in _records(out, "train") + _records(out, "test"):
            for c in r["conversations"]:
                for line in c["value"].removeprefix("<image>\n").split("\n"):  # a description: one per shape
                    assert line in corpus, c["value"]


def test_bad_arguments_are_explained(tmp_path):
    with pytest.raises(ValueError, match="choose from"):
        generate(tmp_path, n_train=1, n_test=0, tasks=("count", "ocr"), progress=False)
    with pytest.raises(ValueError, match="training-only"):
        generate(tmp_path, n_train=1, n_test=1, tasks=("describe",), progress=False)
    with pytest.raises(ValueError, match="multiple of 14"):
        generate(tmp_path, n_train=1, n_test=0, tile_size=100, progress=False)
    with pytest.raises(ValueError, match="max_tiles"):
        generate(tmp_path, n_train=1, n_test=0, max_tiles=4, progress=False)
    with pytest.raises(SystemExit):
        cli_main(["--out", str(tmp_path), "--train", "1", "--test", "0", "--tasks", "ocr"])


def test_cli_writes_dataset(tmp_path, capsys):
    assert cli_main(["--out", str(tmp_path), "--train", "3", "--test", "2", "--seed", "5", "--no-chinese"]) == 0
    assert len(_records(tmp_path, "train")) == 3 and len(_records(tmp_path, "test")) == 2
    info = json.loads((tmp_path / "synth_config.json").read_text())
    assert info["seed"] == 5 and info["config"]["chinese"] is False


def test_cli_writes_the_bundled_models_held_out_split(tmp_path):
    """The README's command for the held-out split gives the images the bundle build evaluates on."""
    import re
    import shlex

    from tessera.synth.bundle import COMMON

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    args = shlex.split(re.search(r"^python -m tessera\.synth --out data/held-out ([^#\n]+)", readme, re.M).group(1))
    assert args[args.index("--test") + 1] == "600"
    args[args.index("--test") + 1] = "12"  # the first 12 of the 600 are enough to compare
    assert cli_main(["--out", str(tmp_path / "cli"), *args]) == 0
    generate(tmp_path / "bundle", n_train=0, n_test=12, seed=0, workers=1, progress=False, **COMMON)
    cli, bundle = _records(tmp_path / "cli", "test"), _records(tmp_path / "bundle", "test")
    assert cli == bundle and sum(r["task"] == "read" for r in cli) == 2
    for record in cli:
        image = record["image"]
        assert (tmp_path / "cli" / image).read_bytes() == (tmp_path / "bundle" / image).read_bytes()


def test_committed_examples_are_current(tmp_path):
    """examples/ holds what write_examples() makes (regenerate with `python -m tessera.synth --examples examples`)."""
    entries = write_examples(tmp_path)
    committed = REPO / "examples"
    assert json.loads((committed / "examples.json").read_text(encoding="utf-8")) == entries
    for entry in entries:
        fresh, kept = Image.open(tmp_path / entry["image"]), Image.open(committed / entry["image"])
        assert np.array_equal(np.asarray(fresh), np.asarray(kept)), entry["image"]
        for qa in entry["questions"]:
            assert qa["question"] in set(text_corpus()) and qa["answer"]


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok"), text_corpus(), vocab_size=1000)


def test_tokenizer_json_files_match_the_internlm2_layout(tokenizer_dir):
    """With 1000 pieces the ids coincide with the InternLM2 fixture's, so the JSON files must be identical."""
    for name in ("added_tokens.json", "special_tokens_map.json", "tokenizer_config.json"):
        assert (tokenizer_dir / name).read_bytes() == conformance_path("tokenizers", "internlm2", name).read_bytes()


def test_tokenizer_model_has_the_fixture_flags_and_special_pieces(tokenizer_dir):
    ours = (tokenizer_dir / "tokenizer.model").read_bytes()
    ref = conformance_path("tokenizers", "internlm2", "tokenizer.model").read_bytes()
    assert P.normalizer_spec(ours) == P.normalizer_spec(ref)
    ours_spec, ref_spec = P.trainer_spec(ours), P.trainer_spec(ref)
    ours_spec.pop(2), ref_spec.pop(2)  # model_prefix: just a name
    assert ours_spec == ref_spec
    ours_pieces, ref_pieces = P.pieces_of(ours), P.pieces_of(ref)
    assert len(ours_pieces) == len(ref_pieces) == 1000
    assert ours_pieces[:259] == ref_pieces[:259]  # <unk> <s> </s> and the 256 byte pieces
    assert ours_pieces[-6:] == ref_pieces[-6:]  # the chat pieces, user-defined, score 0

    sp = spm.SentencePieceProcessor(model_proto=ours)
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert [sp.piece_to_id(p) for p in CHAT_PIECES] == list(range(994, 1000))
    prompt = f"<|im_start|>system\n{V.SYSTEM_MESSAGE}<|im_end|><|im_start|>user\n\nWhat is the value of fox?<|im_end|>"
    ids = sp.encode(prompt)
    assert ids[0] == 999 and ids.count(998) == 2 and ids.count(999) == 2
    assert sp.decode(ids) == prompt
    assert sp.encode("472") == [sp.piece_to_id(d) for d in "472"]  # split_digits


def test_tokenizer_other_sizes_and_determinism(tmp_path, tokenizer_dir):
    small = train_tokenizer(tmp_path / "a", text_corpus(), vocab_size=512)
    again = train_tokenizer(tmp_path / "b", text_corpus(), vocab_size=512)
    for name in ("tokenizer.model", "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json"):
        assert (small / name).read_bytes() == (again / name).read_bytes()
    sp = spm.SentencePieceProcessor(model_file=str(small / "tokenizer.model"))
    assert sp.vocab_size() == 512 and [sp.piece_to_id(p) for p in CHAT_PIECES] == list(range(506, 512))
    added = json.loads((small / "added_tokens.json").read_text())
    assert added == {t: 512 + i for i, t in enumerate(INTERNVL_TOKENS)}
    config = json.loads((small / "tokenizer_config.json").read_text())
    assert config["added_tokens_decoder"]["511"]["content"] == "<|im_start|>"
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer(tmp_path / "c", text_corpus(), vocab_size=200)


def test_tokenizer_loads_in_tessera(tmp_path):
    from tessera.tokenizer import Tokenizer

    tok = Tokenizer.from_dir(train_tokenizer(tmp_path, text_corpus(), vocab_size=512))
    assert len(tok) == 521 and (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)
    assert tok.convert_tokens_to_ids(list(INTERNVL_TOKENS)) == list(range(512, 521))
    assert tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [511, 510]
    ids = tok.encode("<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nHow many shapes are there?<|im_end|>")
    assert ids[:2] == [1, 511] and ids.count(514) == 2 and ids[-1] == 510
    assert tok.decode(tok.encode("What color is the star?", add_special_tokens=False)) == "What color is the star?"


def test_pages_and_charts_get_their_own_tile_grid():
    """InternVL's dynamic tiling (tessera.preprocess) picks exactly the grid a page or chart was drawn on."""
    from tessera.preprocess import tile_grid
    from tessera.synth.chart import CHART_GRIDS
    from tessera.synth.document import page_grids

    for tile in (56, 112, 224):
        for cols, rows in page_grids(12, 6) + list(CHART_GRIDS):
            assert tile_grid(cols * tile, rows * tile, max_tiles=12, image_size=tile) == (cols, rows)


@pytest.mark.parametrize("mode, counts", [("full", False), ("partial", False), ("full", True)])
def test_key_echo_copies_the_questions_key_before_the_answer_and_changes_nothing_else(tmp_path, mode, counts):
    kwargs = dict(n_train=30, n_test=6, seed=8, tasks=("count", "color", "shape", "position"), train_turns=4,
                  progress=False, chinese=True, zh_fraction=0.5)
    generate(tmp_path / "plain", **kwargs)
    generate(tmp_path / mode, key_echo=mode, echo_counts=counts, **kwargs)
    keyed = {  # English templates that name a shape by a key, as regexes capturing it
        **{t: "{kind}" for t in V.Q_COLOR_KIND}, **{t: "{pos}" for t in V.Q_COLOR_POS},
        **{t: "{color}" for t in V.Q_SHAPE_COLOR}, **{t: "{pos}" for t in V.Q_SHAPE_POS},
        **{t: "{color} {kind}" for t in V.Q_POSITION},
        **({t: "{color}" for t in V.Q_COUNT_COLOR} | {t: "{kinds}" for t in V.Q_COUNT_KIND} if counts else {}),
    }
    echoed = 0
    for split in ("train", "test"):
        plain, echo = _records(tmp_path / "plain", split), _records(tmp_path / mode, split)
        assert len(plain) == len(echo)
        for p, e in zip(plain, echo):
            assert p["image"] == e["image"] and p["tasks"] == e["tasks"]
            for (pq, pa), (eq, ea) in zip(_pairs(p), _pairs(e)):
                assert pq == eq
                question = pq.removeprefix("<image>\n")
                template = next((t for t in keyed if _matches(t, question)), None)
                if split == "test" or template is None:  # counts, Chinese questions and the test split: as asked
                    assert ea == pa
                    continue
                key = keyed[template].format_map(_matches(template, question))
                key = key.split()[-1] if mode == "partial" else key
                assert ea == f"{key}: {pa}", (question, ea)
                echoed += 1
    assert echoed >= 10
    with pytest.raises(ValueError, match="key_echo"):
        generate(tmp_path / "bad", key_echo="half", **kwargs)


def _pairs(record: dict) -> list[tuple[str, str]]:
    turns = record["conversations"]
    return [(turns[i]["value"], turns[i + 1]["value"]) for i in range(0, len(turns), 2)]


def _matches(template: str, question: str) -> dict[str, str] | None:
    """The placeholders of ``template`` that ``question`` fills, or None if it is not that template."""
    pattern = re.escape(template)
    plurals = "|".join(V.SHAPES_PLURAL.values())  # "Count the shapes." is not a count by kind
    for name, words in (("kinds", plurals), ("kind", "[a-z]+"), ("color", "[a-z]+"), ("pos", "[a-z]+(?: [a-z]+)?")):
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{words})")
    m = re.fullmatch(pattern, question)
    return m.groupdict() if m else None
