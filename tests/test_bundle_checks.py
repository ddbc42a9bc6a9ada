"""The bundled-model diagnostics in benchmarks/ run (tiny settings): the learning-rate check and the probe."""

from __future__ import annotations

import importlib.util
import json
import random
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import tessera
from tessera.synth import vocab as V
from tessera.vlm import default_model_path

from conftest import REPO, random_synth_checkpoint


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learnability_reports_each_learning_rate(capsys):
    learnability = _script("learnability")
    assert learnability.main(["--lrs", "1e-3,1.5e-4", "--steps", "2", "--batch", "2", "--every", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if re.match(r"\| [0-9.e-]+ \| \d", line)]
    assert [row.split(" | ")[:2] for row in rows] == [["| 0.001", "1"], ["| 0.001", "2"], ["| 0.00015", "1"],
                                                      ["| 0.00015", "2"]]


def test_learnability_set_changes_the_fresh_models_config(capsys):
    learnability = _script("learnability")
    config = learnability.tiny_config(("llm_config.hidden_size=128", "llm_config.num_hidden_layers=1"))
    assert (config.llm_config.hidden_size, config.llm_config.num_hidden_layers) == (128, 1)
    assert learnability.tiny_config().llm_config.hidden_size == 256
    with pytest.raises(ValueError, match="no field llm_config.width"):
        learnability.tiny_config(("llm_config.width=3",))
    args = ["--lrs", "1e-3", "--steps", "1", "--batch", "2", "--every", "1", "--set", "llm_config.hidden_size=128"]
    assert learnability.main(args) == 0
    assert ", llm_config.hidden_size=128, 1 steps" in capsys.readouterr().out


def test_learnability_bind_can_ask_with_the_last_token(capsys):
    learnability = _script("learnability")
    args = ["--task", "bind", "--lrs", "1e-3", "--steps", "2", "--batch", "2", "--every", "1", "--cell-last", "1"]
    assert learnability.main(args) == 0
    assert "task bind (chance 17%), from random weights, cell token last for 1 steps" in capsys.readouterr().out
    assert learnability.main([*args[:-2], "--text-first", "1"]) == 0
    assert ", scene as text for 1 steps" in capsys.readouterr().out
    assert learnability.main([*args, "--place-words"]) == 0
    assert ", cells named by a row and a column token" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        learnability.main([*args[:-2], "--text-first", "1", "--place-words"])
    assert learnability.main([*args[:-2], "--ask-first"]) == 0
    assert ", the asked cell before the image" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        learnability.main([*args, "--ask-first"])  # with --cell-last


def test_learnability_find_asks_the_cell_of_a_colour(capsys):
    learnability = _script("learnability")
    rng = random.Random(4)
    for _ in range(12):  # the bind scenes: the answer is the cell whose circle has the asked colour
        pixels, color, _, cell = learnability.draw(rng, "find")
        row, col = divmod(cell, 3)
        assert tuple(pixels[int((row + 0.5) * 112 / 3), int((col + 0.5) * 112 / 3)]) == learnability.V.COLORS[color]
    assert learnability.CLASSES["find"] == learnability.V.POSITIONS
    args = ["--task", "find", "--lrs", "1e-3", "--steps", "2", "--batch", "2", "--every", "1", "--cell-last", "1"]
    assert learnability.main(args) == 0
    out = capsys.readouterr().out
    assert "task find (chance 11%), from random weights, cell token last for 1 steps" in out
    assert len(re.findall(r"^\| 0.001 \| [12] \|", out, flags=re.M)) == 2
    with pytest.raises(SystemExit):
        learnability.main([*args, "--place-words"])
    assert "--place-words: only for --task bind" in capsys.readouterr().err


def test_learnability_bind_flags_are_refused_for_other_tasks(capsys):
    learnability = _script("learnability")
    with pytest.raises(SystemExit):
        learnability.main(["--task", "color", "--cell-last", "5", "--place-words"])
    assert "--cell-last, --place-words: only for --task bind" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["position", "kind"])
def test_learnability_draws_the_named_colour_and_cell(task):
    learnability = _script("learnability")
    rng = random.Random(3)
    kinds = set()
    for _ in range(12):
        pixels, color, kind, cell = learnability.draw(rng, task)
        kinds.add(kind)
        row, col = divmod(cell, 3)
        cy, cx = int((row + 0.5) * 112 / 3), int((col + 0.5) * 112 / 3)
        assert tuple(pixels[cy, cx]) == learnability.V.COLORS[color]
        assert (np.abs(pixels.astype(int) - pixels[cy, cx]).sum(-1) == 0).sum() < 112 * 112 / 9  # one cell's worth
    assert kinds == ({"circle"} if task == "position" else set(learnability.V.SHAPES))


def test_learnability_scale_draws_larger_shapes_inside_the_tile():
    learnability = _script("learnability")
    for seed in range(8):
        small, *_ = learnability.draw(random.Random(seed), "kind")
        large, *_ = learnability.draw(random.Random(seed), "kind", scale=2)
        ink = [(np.abs(p.astype(int) - p[0, 0]).sum(-1) > 0) for p in (small, large)]
        assert ink[1].sum() > 3 * ink[0].sum()  # ~4x the area
        edges = (ink[1][0], ink[1][-1], ink[1][:, 0], ink[1][:, -1])
        # A shape may touch the border (a tip, or a circle's flattest pixel row: ~15 px), never be cut by it
        # (a circle cut 3 px deep leaves 18+ px on the border).
        assert all(edge.sum() <= 16 for edge in edges)


def test_learnability_squash_squeezes_a_scene_shaped_canvas_into_the_tile():
    learnability = _script("learnability")
    ratios = set()
    for seed in range(40):
        pixels, _, kind, _ = learnability.draw(random.Random(seed), "position", squash=True)
        assert pixels.shape == (112, 112, 3) and kind == "circle"
        ink = np.abs(pixels.astype(int) - pixels[0, 0]).sum(-1) > 60
        rows, cols = np.nonzero(ink)
        ratios.add(round((cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1), 1))
    # A circle on a wide canvas comes out narrow, on a tall one flat, on a square one round.
    assert min(ratios) <= 0.6 and max(ratios) >= 1.7 and any(0.8 <= r <= 1.2 for r in ratios)


def test_learnability_init_starts_from_a_checkpoint_and_scores_its_answer_words(capsys):
    learnability = _script("learnability")
    args = ["--task", "kind", "--lrs", "1.5e-4", "--steps", "1", "--batch", "2", "--init", str(default_model_path())]
    assert learnability.main(args) == 0
    out = capsys.readouterr().out
    assert "from " + str(default_model_path()) in out
    assert re.search(r"\| 0.00015 \| 1 \| [0-9.]+ \| \d+% \|", out), out
    # the bundled tokenizer writes each place as one token (tessera.synth.phrases), so places can be scored too
    assert len(list(learnability.run(1e-4, "position", 1, 2, 5, 0, 1, init=str(default_model_path())))) == 1


def test_learnability_init_refuses_answers_that_share_a_first_token(tmp_path):
    """Before the place tokens, "top left" and "top right" both started with "top": no first-token score."""
    ckpt = random_synth_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="share"):
        list(_script("learnability").run(1e-4, "position", 1, 2, 5, 0, 1, init=str(ckpt)))


def test_probe_shapes_scores_the_bundled_model(capsys):
    assert _script("probe_shapes").main([str(default_model_path()), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"color \d+% position \d+% shape \d+% \(2 scenes\)", out), out


def test_bundle_build_runs_the_stages_in_order(tmp_path):
    """The bundle command's build (tiny sizes, one step per stage): each stage starts from the one before and
    the held-out split is the fixed seed-0 test set, whatever the training sizes."""
    import json

    from tessera.synth import bundle
    from tessera.tokenizer import Tokenizer

    quick = ["optim.max_steps=1", "optim.per_device_batch_size=2", "optim.warmup_steps=0", "run.plot=false"]
    sizes = {name: 3 for name in bundle.DATA}
    tiled = [*quick, "model.max_dynamic_patch=2", "run.precision=fp32"]
    # stages 1-2 train at one tile, every later stage at up to 12 (2 here)
    overrides = {stage: quick for stage, _ in bundle.STAGES[:2]} | {stage: tiled for stage, _ in bundle.STAGES[2:]}
    final = bundle.build(tmp_path, sizes=sizes, n_test=6, workers=1, overrides=overrides)
    last = bundle.STAGES[-1][0]
    assert final == tmp_path / last / "final" and (final / "model.safetensors").exists()
    for (before, _), (stage, data) in zip(bundle.STAGES, bundle.STAGES[1:]):
        recipe = (tmp_path / stage / "recipe.yaml").read_text()
        start = tmp_path / f"{stage}-phrases" if stage == bundle.PHRASES_BEFORE else tmp_path / before / "final"
        assert f"model_name_or_path: {start}" in recipe
        if isinstance(data, str):
            assert f"meta_path: {tmp_path / data / 'meta_train.json'}" in recipe
        else:  # several directories: one meta file lists them all
            assert f"meta_path: {tmp_path / f'meta-{stage}.json'}" in recipe
            meta = json.loads((tmp_path / f"meta-{stage}.json").read_text())
            assert [entry["root"] for entry in meta.values()] == [str(tmp_path / name) for name in data]
    test = [json.loads(line) for line in (tmp_path / "data-test" / "test.jsonl").read_text().splitlines()]
    assert [r["task"] for r in test] == ["count", "color", "shape", "position", "read", "chart"]
    stage1 = [json.loads(line) for line in (tmp_path / "data-stage1" / "train.jsonl").read_text().splitlines()]
    assert len(stage1) == 3 and all(r["task"] in bundle.SHAPE_TASKS for r in stage1)
    stage4 = [json.loads(line) for line in (tmp_path / "data-stage4" / "train.jsonl").read_text().splitlines()]
    assert all(r["tasks"] == ["shape"] for r in stage4)  # the kind stage asks only the kind
    for name, boxes in (("data-stage6", 3), ("data-stage7", 1)):  # reading starts on one-tile pages
        pages = [json.loads(line) for line in (tmp_path / name / "train.jsonl").read_text().splitlines()]
        assert all((r["width"], r["height"]) == (112, 112) and len(r["tasks"]) <= boxes for r in pages)
    for name, echo in (("data-stage30-shapes", "full"), ("data-stage31-shapes", "none")):  # the count stages
        config = json.loads((tmp_path / name / "synth_config.json").read_text())["config"]
        assert "tally" in config["tasks"] and config["key_echo"] == echo and config["echo_counts"] == (echo == "full")
    for name, echo in (("data-stage33-shapes", "full"), ("data-stage34-shapes", "none")):  # the colour stages
        config = json.loads((tmp_path / name / "synth_config.json").read_text())["config"]
        assert "paint" in config["tasks"] and config["key_echo"] == echo
    for name, echo in (("data-stage36-shapes", "full"), ("data-stage37-shapes", "none")):  # count by kind
        config = json.loads((tmp_path / name / "synth_config.json").read_text())["config"]
        assert "tally_kind" in config["tasks"] and config["key_echo"] == echo
        assert config["echo_counts"] == (echo == "full")
    phrased = Tokenizer.from_dir(tmp_path / f"{bundle.PHRASES_BEFORE}-phrases")  # places are one token from then on
    assert len(phrased.encode("top right", add_special_tokens=False)) == 1
    assert len(Tokenizer.from_dir(final)) == len(phrased) == len(Tokenizer.from_dir(tmp_path / "tokenizer")) + 8
    config = json.loads((tmp_path / "data-stage39-shapes" / "synth_config.json").read_text())["config"]
    assert "locate" in config["tasks"] and config["key_echo"] == "none"
    config = json.loads((tmp_path / "data-stage41-shapes" / "synth_config.json").read_text())["config"]
    assert config["zh_fraction"] == 0.6 and config["chinese"]  # the Chinese stage
    config = json.loads((tmp_path / "data-stage43-shapes" / "synth_config.json").read_text())["config"]
    assert config["kind_repeats"] == 0.5 and config["weights"]["count"] == 3.0  # a kind in several colours
    for name in ("data-stage30-pages", "data-stage33-pages", "data-stage36-pages", "data-stage39-pages",
                 "data-stage41-pages", "data-stage43-pages"):
        pages = json.loads((tmp_path / name / "synth_config.json").read_text())["config"]
        assert pages["one_tile_pages"] and pages["tasks"] == ["read"]  # pages kept in, so that reading survives


def test_bundle_command_passes_device_and_overrides_to_every_stage(tmp_path, monkeypatch):
    from tessera.synth import bundle

    seen = {}
    monkeypatch.setattr(bundle, "build", lambda out, **kw: seen.update(kw) or out / "stage3" / "final")
    monkeypatch.setattr(bundle, "ablation", lambda ckpt, data, out, device: seen.update(device=device) or out)
    argv = ["--out", str(tmp_path), "--device", "cuda", "--stage2-override", "optim.max_steps=9", "--stage2", "7"]
    assert bundle.main(argv) == 0
    assert seen["device"] == "cuda"
    assert seen["overrides"]["stage1"] == ["run.device=cuda", "run.precision=auto"]
    assert seen["overrides"]["stage2"] == ["run.device=cuda", "run.precision=auto", "optim.max_steps=9"]
    assert seen["sizes"] == bundle.SIZES | {"data-stage2": 7}


def test_bundle_plots_per_task_scores(tmp_path):
    import json

    from tessera.synth import bundle

    for tiles in (1, 12):
        run = tmp_path / "synth" / f"tiles-{tiles}"
        run.mkdir(parents=True)
        per_task = {t: 10.0 * tiles for t in bundle.V.TASKS}
        (run / "scores.json").write_text(json.dumps({"max_tiles": tiles, "metrics": {"per_task": per_task}}))
    png = bundle.plot_tasks(tmp_path, tmp_path / "per_task.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synth_breakdown_names_the_form_of_every_shape_question(tmp_path, capsys):
    from tessera.synth import shapes
    from tessera.synth import vocab as V

    breakdown = _script("synth_breakdown")
    rng = random.Random(5)
    expected = {"count": {"count all", "count by colour", "count by kind"},
                "color": {"colour by kind", "colour by place"},
                "shape": {"kind by colour", "kind by place"},
                "position": {"place by colour + kind"}}
    seen, records = set(), []
    for i in range(400):
        _, scene = shapes.draw_scene(rng, 112)
        task = ("count", "color", "shape", "position")[i % 4]
        question, answer, _ = shapes.ask(rng, scene, task, chinese=i % 3 == 0)
        form, needs_kind = breakdown.form_of(question)
        assert form in expected[task], (question, form)
        assert needs_kind == ("kind" in form)
        seen.add(form)
        records.append({"prompt": question, "answer": answer, "prediction": answer if i % 2 else "no"})
    assert seen == set().union(*expected.values())
    assert breakdown.form_of(V.Q_READ[0].format(box="red")) is None
    assert breakdown.form_of(V.Q_CHART_VALUE[0].format(label="ant")) is None

    run = tmp_path / "tiles-12"
    run.mkdir()
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    scores = breakdown.breakdown(run / "predictions.jsonl")
    assert sum(total for form, (_, total) in scores.items() if form in seen) == 400
    assert sum(ok for form, (ok, _) in scores.items() if form in seen) == 200
    for form in breakdown.BILINGUAL:  # each bilingual form is split by language, and only by language
        by_language = [scores.get(f"{form}, {lang}", (0, 0)) for lang in ("English", "Chinese")]
        assert tuple(map(sum, zip(*by_language))) == scores[form] and all(total for _, total in by_language)
    zh = sum(any("\u4e00" <= ch <= "\u9fff" for ch in r["prompt"]) for r in records)
    assert sum(scores[f"{form}, Chinese"][1] for form in breakdown.BILINGUAL) == zh > 0
    assert breakdown.main([str(run)]) == 0
    out = capsys.readouterr().out
    assert "| needs the kind |" in out and "| colour by kind, Chinese |" in out


def test_synth_breakdown_splits_reading_into_words_and_numbers(tmp_path, capsys):
    from tessera.synth import vocab as V

    breakdown = _script("synth_breakdown")
    records = [  # two words (one right), two numbers (none right; 2 of 6 digits in place)
        {"prompt": V.Q_READ[0].format(box="red"), "answer": "pear", "prediction": "pear"},
        {"prompt": V.Q_READ[2].format(box="blue"), "answer": "drum", "prediction": "gold"},
        {"prompt": V.Q_READ[1].format(box="green"), "answer": "185", "prediction": "184"},
        {"prompt": V.Q_READ[0].format(box="red"), "answer": "326", "prediction": "799"},
        {"prompt": V.Q_CHART_VALUE[0].format(label="ant"), "answer": "12", "prediction": "12"},
    ]
    run = tmp_path / "tiles-12"
    run.mkdir()
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    scores = breakdown.breakdown(run / "predictions.jsonl")
    assert scores == {"read a word": (1, 2), "read a number": (0, 2), "digits of the numbers": (2, 6)}
    assert breakdown.main([str(run)]) == 0
    assert "| read a number | 0 % of 2 |" in capsys.readouterr().out


def test_probe_features_fits_a_linear_probe_and_prints_both_weights(capsys):
    probe_features = _script("probe_features")
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    x = torch.randn(300, 8, generator=g) + 3 * F.one_hot(y, 8).float()  # separable along three axes
    assert probe_features.probe((x[:200], y[:200]), (x[200:], y[200:]), 3) > 0.9
    assert probe_features.probe((x[:200], y[:200]), (x[200:], y[200:].roll(1)), 3) < 0.5  # labels off by one
    args = ["--n-train", "24", "--n-test", "8", "--steps", "3", "--task", "color", "--squash"]
    assert probe_features.main(args) == 0
    rows = re.findall(r"^\| (trained|random) \| [0-9.]+% \|$", capsys.readouterr().out, flags=re.M)
    assert rows == ["trained", "random"]
    assert probe_features.main([*args[:6], "--scenes", "square"]) == 0
    assert "one-shape scenes (square canvases)" in capsys.readouterr().out


def test_probe_features_scene_tiles_are_what_one_tile_shows():
    probe_features = _script("probe_features")
    rng = random.Random(4)
    for square in (True, False, False, False):
        tile, color, kind, cell = probe_features.scene_tile(rng, square)
        assert tile.shape == (112, 112, 3) and tile.dtype == np.uint8
        assert kind in probe_features.V.SHAPES and 0 <= cell < 9
        ink = np.abs(tile.astype(int) - tile[0, 0]).sum(-1) > 60
        rows, cols = np.nonzero(ink)
        row, col = divmod(cell, 3)  # the shape's ink is centred in its cell of the tile
        assert abs(rows.mean() - (row + 0.5) * 112 / 3) < 112 / 6 and abs(cols.mean() - (col + 0.5) * 112 / 3) < 112 / 6


def test_probe_features_cell_probe_has_a_head_per_cell_scored_on_occupied_cells(capsys):
    probe_features = _script("probe_features")
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (300, 2), generator=g)  # two heads, label 0 = empty
    x = torch.cat([F.one_hot(y[:, 0], 3), F.one_hot(y[:, 1], 3)], 1).float() * 3 + torch.randn(300, 6, generator=g)
    assert probe_features.probe((x[:200], y[:200]), (x[200:], y[200:]), 3) > 0.9
    swapped = y[200:].flip(1)  # each head scored against the other cell's labels
    assert probe_features.probe((x[:200], y[:200]), (x[200:], swapped), 3) < 0.6
    rng = random.Random(2)
    tile, labels = probe_features.cell_tile(rng, "kind")
    assert tile.shape == (112, 112, 3) and len(labels) == 9
    assert 1 <= sum(v > 0 for v in labels) <= 6 and max(labels) <= len(probe_features.V.SHAPES)
    args = ["--n-train", "24", "--n-test", "8", "--steps", "3", "--task", "cell-color"]
    assert probe_features.main(args) == 0
    out = capsys.readouterr().out
    assert "full scenes at one tile" in out and "(chance 17%)" in out
    assert re.findall(r"^\| (trained|random) \| [0-9.]+% \|$", out, flags=re.M) == ["trained", "random"]


def test_lookup_hops_scores_every_shape_in_each_context(capsys):
    lookup_hops = _script("lookup_hops")
    vlm = tessera.load(None, device="cpu", dtype="float32")
    scores = lookup_hops.score(vlm, 3, seed=5)
    rng = random.Random(5)
    shapes_seen = 0
    for _ in range(3):  # the same draws as score(): scenes of 2-6 shapes
        shapes_seen += len(lookup_hops.draw_scene(rng, vlm.config.image_size, 2)[1])
    assert {context: asked for context, (_, asked) in scores.items()} == dict.fromkeys(lookup_hops.CONTEXTS, shapes_seen)
    assert all(0 <= right <= asked for right, asked in scores.values())
    # Teacher-forced top token == the greedy answer's first token: right exactly for the colour chat() answers.
    image, question = Image.new("RGB", (112, 112), "white"), "What color is the shape in the center?"
    said = vlm.chat(question, image, max_tiles=1, max_new_tokens=1)
    req = vlm.prepare(question, image, max_tiles=1)
    for colour in lookup_hops.V.COLORS:
        ids = vlm.tokenizer.encode(colour, add_special_tokens=False)
        right = lookup_hops.next_token_right(vlm, req.input_ids, req.pixel_values, colour, {ids[0]})
        assert right == [vlm.tokenizer.decode(ids[:1]) == said]
    assert lookup_hops.next_token_right(vlm, req.input_ids, req.pixel_values, "red", set()) == []
    assert lookup_hops.main(["--scenes", "1", "--key-use", "1"]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^\| (describe|question|echo) \| [0-9.]+% of \d+ \|$", out, flags=re.M) == \
        list(lookup_hops.CONTEXTS)
    assert re.search(r"^\| count by colour \| [01] of 1 \| [0-9.]+% of 6 \|$", out, flags=re.M), out
    assert re.search(r"^\| place by colour and kind \| [01] of 1 \| [0-9.]+% of [3-6] \|$", out, flags=re.M), out
    forms = lookup_hops.key_use(vlm, 2, seed=3)
    alike, scenes, right, asked = forms["colour by place"]
    assert scenes == 2 and 0 <= alike <= 2 and 6 <= asked <= 12 and 0 <= right <= asked  # every shape of 3-6 asked
    assert forms["place by colour and kind"][1::2] == (2, asked)  # every shape asked where it is, too
    alike, scenes, right, asked = forms["colour by kind"]  # only kinds that occur once; scenes with two such
    assert 0 <= scenes <= 2 and 2 * scenes <= asked <= 6 * scenes and 0 <= alike <= scenes and 0 <= right <= asked
    assert lookup_hops.key_use(vlm, 2, seed=3, strip_key=True) == forms  # plain answers: nothing to strip


def test_key_curriculum_runs_its_stages_in_order_and_resumes(tmp_path, capsys):
    """benchmarks/key_curriculum.py (tiny sizes, one step per stage): the three shape stages chain from the
    bundled model at the asked tiles, their answers copy the whole key, its last word, nothing, and stage 13's
    recipe follows on pages and the mix; a second call finds every phase done and trains nothing."""
    curriculum = _script("key_curriculum")
    argv = ["--out", str(tmp_path), "--scenes", "6", "--steps", "1,1,1", "--after-steps", "1", "--after-sizes", "4,4", "--max-tiles", "2",
            "--hops-scenes", "2", "--hops-key-use", "1", "--threads", "1", "--set", "model.freeze_backbone=true",
            "--weight", "locate=2", "--weight", "position=1.5"]
    assert curriculum.main(argv) == 0
    phases = [json.loads(line)["phase"] for line in (tmp_path / "summary.jsonl").read_text().splitlines()]
    assert phases == ["start", "full", "partial", "plain", "lookup_hops", "stage13", "done"]
    meta = json.loads((tmp_path / "meta-stage13.json").read_text())  # stage 13's recipe on pages and the mix
    assert {name: entry["root"] for name, entry in meta.items()} == {
        "stage13-read": str(tmp_path / "data-stage13-read"), "stage13-mix": str(tmp_path / "data-stage13-mix")}
    assert f"model_name_or_path: {tmp_path / 'plain' / 'final'}" in (tmp_path / "stage13" / "recipe.yaml").read_text()
    starts = [str(default_model_path()), str(tmp_path / "full" / "final"), str(tmp_path / "partial" / "final")]
    for stage, start in zip(curriculum.STAGE_NAMES, starts):
        recipe = (tmp_path / stage / "recipe.yaml").read_text()
        assert f"model_name_or_path: {start}" in recipe and "max_dynamic_patch: 2" in recipe
        assert "freeze_backbone: true" in recipe
    def place_answers(name):  # the answers to "What color is the shape in the <place>?"
        rows = [json.loads(line) for line in (tmp_path / f"data-{name}" / "train.jsonl").read_text().splitlines()]
        turns = [t for r in rows for t in r["conversations"]]
        return [(q["value"].removeprefix("<image>\n"), a["value"]) for q, a in zip(turns[::2], turns[1::2])
                if q["value"].removeprefix("<image>\n").startswith("What color is the shape in the ")]

    for name in curriculum.STAGE_NAMES:  # --weight: the training-only locate joins the shape tasks
        config = json.loads((tmp_path / f"data-{name}" / "synth_config.json").read_text())["config"]
        assert config["tasks"][-1] == "locate" and config["weights"]["locate"] == 2
        assert config["weights"]["position"] == 1.5 and config["weights"]["count"] == curriculum.KEY_WEIGHTS["count"]
    full, partial, plain = (place_answers(name) for name in curriculum.STAGE_NAMES)
    assert full and partial and plain
    for question, answer in full:
        assert answer.startswith(question.removeprefix("What color is the shape in the ").rstrip("?") + ": ")
    assert all(a.split(": ")[0] == q.rstrip("?").split()[-1] for q, a in partial)
    assert all(": " not in a and a not in V.POSITIONS for _, a in plain)
    capsys.readouterr()
    assert curriculum.main(argv) == 0  # resumed: nothing left to train
    phases = [json.loads(line)["phase"] for line in (tmp_path / "summary.jsonl").read_text().splitlines()]
    assert phases[7:] == ["start", "lookup_hops", "done"]
    with pytest.raises(SystemExit):
        curriculum.main([*argv, "--weight", "locate"])
    assert "--weight locate: expected TASK=NUMBER" in capsys.readouterr().err


def test_place_lookup_asks_every_shape_where_it_is(capsys):
    place_lookup = _script("place_lookup")
    vlm = tessera.load(None, device="cpu", dtype="float32")
    s = place_lookup.score(vlm, 2, seed=7)
    rng = random.Random(7)
    scenes = [place_lookup.draw_scene(rng, vlm.config.image_size, 3)[1] for _ in range(2)]  # score()'s draws
    unique = sum(sum(x.color == shape.color for x in scene) == 1 for scene in scenes for shape in scene)
    for row in place_lookup.ROWS:
        assert s[row]["all"][1] == sum(map(len, scenes)) and s[row]["unique"][1] == unique
        assert 0 <= s[row]["unique"][0] <= s[row]["all"][0] <= s[row]["all"][1]
    assert s["alike"][1] == 2 and s["wrong column"][0] <= s["wrong column"][1] <= s["greedy"]["all"][1]
    assert s["wrong column"][1] == s["greedy"]["all"][1] - s["greedy"]["all"][0]
    rng = random.Random(7 + 198)  # every place word of every locate line is scored ("top left": two tokens)
    places = [V.POSITIONS[x.cell] for _ in range(2) for x in place_lookup.draw_scene(rng, vlm.config.image_size, 3)[1]]
    assert s["locate"][1] == sum(len(vlm.tokenizer.encode(" " + p, add_special_tokens=False)) for p in places)
    assert place_lookup.main(["--scenes", "1"]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^\| (first word|greedy|after the full key|after the kind) \|", out, flags=re.M) == \
        list(place_lookup.ROWS)
    assert re.search(r"scenes answered all alike: [01] of 1;", out)


def test_row_mates_sorts_position_misses_by_whose_place_they_name(capsys):
    from tessera.synth.shapes import Shape

    row_mates = _script("row_mates")
    star, circle, square = Shape("star", "red", 0), Shape("circle", "blue", 2), Shape("square", "red", 6)
    scene = [star, circle, square]
    assert row_mates.classify(star, scene, "top left") == ("row-mates", "right")
    assert row_mates.classify(star, scene, "top right") == ("row-mates", "a row-mate's place")
    assert row_mates.classify(star, scene, "bottom left") == ("row-mates", "a column-mate's place")
    assert row_mates.classify(square, scene, "top right") == ("alone", "another shape's place")
    assert row_mates.classify(square, scene, "center") == ("alone", "an empty place")
    assert row_mates.main(["--scenes", "2", "--max-tiles", "1"]) == 0
    rows = re.findall(r"^\| (alone|row-mates) \((\d+)\) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$",
                      capsys.readouterr().out, flags=re.M)
    assert [r[0] for r in rows] == ["alone", "row-mates"]
    assert all(int(r[1]) == sum(map(int, r[2:])) for r in rows)  # every answer sorted exactly once
    assert sum(int(r[1]) for r in rows) >= 6  # two scenes of 3-6 shapes


def test_count_kinds_sorts_every_answer_by_kind_and_true_count(capsys):
    count_kinds = _script("count_kinds")
    assert count_kinds.outcome("2", 2) == "right"
    assert count_kinds.outcome("1", 2) == "one too few" and count_kinds.outcome("3", 2) == "one too many"
    assert count_kinds.outcome("0", 2) == "further off" and count_kinds.outcome("two", 2) == "not a number"
    assert count_kinds.main(["--scenes", "3", "--max-tiles", "1"]) == 0
    rows = re.findall(r"^\| (\S+) \((\d+)\) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$",
                      capsys.readouterr().out, flags=re.M)
    by_row = {r[0]: (int(r[1]), sum(map(int, r[2:]))) for r in rows}
    assert all(asked == sorted_once for asked, sorted_once in by_row.values())  # every answer sorted once
    assert by_row["all"][0] == 12  # three scenes, four kinds each
    assert sum(by_row[k][0] for k in V.SHAPES) == sum(v[0] for r, v in by_row.items() if r.startswith("n=")) == 12
