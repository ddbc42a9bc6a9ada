"""Each benchmark reader on a tiny sample in its published format, end to end through the runner with a fake
VLM: predictions file, scores (hand-computed expectations), report, and re-scoring from saved predictions."""

import json

import pytest
from eval_fakes import FakeVLM
from eval_samples import SAMPLES

from tessera.eval import BENCHMARKS, evaluate, get_benchmark, load_items, score_run, write_report

OFFICIAL = {  # name: (max_tiles, max_new_tokens), from the fact sheet §8 and eval-metrics.md §0
    "docvqa": (18, 100), "infovqa": (24, 100), "textvqa": (24, 10), "chartqa": (12, 100), "mme": (12, 20),
    "ai2d": (6, 10), "mmmu": (6, 10), "mmbench_en": (6, 100), "mmbench_cn": (6, 100), "ccbench": (6, 100),
    "seed": (6, 100), "scienceqa": (6, 100), "pope": (6, 100), "mathvista": (6, 4096),
    "ocrbench": (6, 1024), "hallusionbench": (6, 1024), "realworldqa": (6, 1024), "synth": (None, 64),
}


def test_official_settings():
    assert set(OFFICIAL) == set(BENCHMARKS)
    for name, (tiles, tokens) in OFFICIAL.items():
        assert (BENCHMARKS[name].max_tiles, BENCHMARKS[name].max_new_tokens) == (tiles, tokens), name
    assert get_benchmark("MMBench-EN") is BENCHMARKS["mmbench_en"]
    with pytest.raises(KeyError, match="available"):
        get_benchmark("nope")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_benchmark_end_to_end(tmp_path, name):
    sample = SAMPLES[name](tmp_path / "data")
    vlm = FakeVLM(sample.answer, max_dynamic_patch=7)
    results = evaluate(vlm, [name], tmp_path / "data", tmp_path / "out", model="fake-model", batch_size=2)
    assert len(results) == 1
    result = results[0]
    tiles = BENCHMARKS[name].max_tiles or 7
    assert result["n"] == sample.n
    assert result["score"] == pytest.approx(sample.score, abs=1e-9)
    assert {c["max_tiles"] for c in vlm.calls} == {tiles}
    assert {c["max_new_tokens"] for c in vlm.calls} == {BENCHMARKS[name].max_new_tokens}
    if sample.images_per_item is not None:
        assert all(n == sample.images_per_item for c in vlm.calls for n in c["images"])

    run_dir = tmp_path / "out" / name / f"tiles-{tiles}"
    lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == sample.n and not list(run_dir.glob("predictions.rank*"))
    assert [r["prediction"] for r in records] == [sample.answer(r["prompt"], 0) for r in records]
    assert json.loads((run_dir / "scores.json").read_text())["score"] == pytest.approx(sample.score)

    rescored = score_run(run_dir)  # from saved predictions only
    assert rescored["score"] == result["score"] and rescored["metrics"] == result["metrics"]
    report = write_report(tmp_path / "out")
    assert f"| {name} | {tiles} | {sample.n} |" in report["markdown"]
    assert (tmp_path / "out" / "summary.json").exists() and report["plot"] is None


def _prompts(tmp_path, name):
    SAMPLES[name](tmp_path)
    items = load_items(BENCHMARKS[name], tmp_path / name)
    return {i.id: i.prompt for i in items}, items


SHORT = "Answer the question using a single word or phrase."
MC = "Answer with the option's letter from the given choices directly."


def test_prompts_internvl_short_answer(tmp_path):
    assert _prompts(tmp_path, "textvqa")[0]["1"] == "what does the sign say? " + SHORT
    assert _prompts(tmp_path, "docvqa")[0]["10"] == "what is the greeting? " + SHORT
    assert _prompts(tmp_path, "chartqa")[0]["augmented/0"] == "is it rising? " + SHORT
    assert _prompts(tmp_path, "ai2d")[0]["1"] == "Which part? A. x B. y"
    assert _prompts(tmp_path, "mme")[0]["artwork/a1/0"] == "Is this by Monet? Please answer yes or no. " + SHORT
    assert _prompts(tmp_path, "pope")[0]["1"] == "Is there a dog in the image? "  # InternVL: q + ' ' + ''


def test_prompts_vlmevalkit_style(tmp_path):
    assert _prompts(tmp_path, "ocrbench")[0]["0"] == "what is written?\n" + SHORT
    assert _prompts(tmp_path, "hallusionbench")[0]["VD_chart_1_0_0_0"] == (
        "Is q0 true on f0? Please answer yes or no. " + SHORT)
    rwq = _prompts(tmp_path, "realworldqa")[0]
    assert rwq["0"] == "How many lanes?\nA. 1\nB. 2\nC. 3\n" + MC
    assert rwq["1"] == "这是什么颜色？\nA. 红\nB. 蓝\n请直接回答选项字母。"
    assert rwq["2"] == "What is the speed limit? Answer with a number.\nAnswer the question directly."


def test_prompts_multiple_choice(tmp_path):
    mmb = _prompts(tmp_path, "mmbench_en")[0]
    assert mmb["0"] == f"Look closely.\nWhich animal barks?\nA. dog\nB. cat\nC. bird\nD. fish\n{MC}"
    assert mmb["1000000"] == f"Which animal barks?\nA. cat\nB. bird\nC. fish\nD. dog\n{MC}"
    assert mmb["1"] == f"Which colour is the sky?\nA. red\nB. blue\n{MC}"  # empty C/D cells are not options
    assert _prompts(tmp_path, "ccbench")[0]["1"].endswith("\nB. blue\n请直接回答选项字母。")
    sqa = _prompts(tmp_path, "scienceqa")[0]
    assert sqa["2"] == f"Think about feathers.\nWhich is a bird?\nA. dog\nB. cat\nC. robin\n{MC}"
    assert _prompts(tmp_path, "seed")[0]["101"] == f"Scene animal?\nA. dog\nB. cat\nC. bird\nD. fish\n{MC}"
    mmmu, items = _prompts(tmp_path, "mmmu")
    assert mmmu["validation_Art_1"] == f"<image 1> Which style?\nA. Baroque\nB. Cubism\n{MC}"
    assert mmmu["validation_Math_1"] == "<image 1> Compute the slope.\n" + SHORT
    assert [len(i.images) for i in items] == [1, 2, 1] and all(i.merge_images for i in items)
    assert {i.meta["subject"] for i in items} == {"Art", "Math"}
    assert _prompts(tmp_path, "mathvista")[0]["1"].startswith("Hint: pick. Question: how many sides?")
    assert _prompts(tmp_path, "synth")[0]["0"] == "How many shapes?"  # "<image>\n" is the model's to add


def test_mmbench_image_references_resolve(tmp_path):
    _, items = _prompts(tmp_path, "mmbench_en")
    by_id = {i.id: i for i in items}
    assert by_id["1000000"].images == by_id["0"].images  # the "0" cell points at row 0's image


def test_detailed_metrics(tmp_path):
    def run(name, **kw):
        sample = SAMPLES[name](tmp_path / "data")
        return evaluate(FakeVLM(sample.answer), [name], tmp_path / "data", tmp_path / "out", model="m", **kw)[0]

    chart = run("chartqa")["metrics"]
    assert chart["human"] == pytest.approx(50.0) and chart["augmented"] == pytest.approx(100.0)
    mmb = run("mmbench_en")["metrics"]
    assert mmb["vanilla_accuracy"] == pytest.approx(500 / 6) and mmb["unresolved"] == 0
    assert mmb["per_category"] == {"attribute": 100.0, "color": 0.0}
    mme = run("mme")["metrics"]
    assert mme["perception"] == pytest.approx(325.0) and mme["cognition"] == 0.0
    assert mme["subtasks"]["existence"] == {"acc": 75.0, "acc_plus": 50.0, "score": 125.0}
    pope = run("pope")["metrics"]["splits"]
    assert pope["adversarial"]["precision"] == 0.5 and pope["random"]["recall"] == 0.5
    ocr = run("ocrbench")["metrics"]
    assert ocr["Text Recognition"] == 1 and ocr["Handwritten Mathematical Expression Recognition"] == 1
    assert ocr["Scene Text-centric VQA"] == 0
    hb = run("hallusionbench")["metrics"]
    assert (hb["aAcc"], hb["fAcc"], hb["qAcc"], hb["unknown"]) == (75.0, 50.0, 50.0, 1)
    synth = run("synth")["metrics"]["per_task"]
    assert synth == {"color": 100.0, "count": 50.0}


def test_mmmu_multi_image_is_one_block(tmp_path):
    sample = SAMPLES["mmmu"](tmp_path / "data")
    vlm = FakeVLM(sample.answer)
    evaluate(vlm, ["mmmu"], tmp_path / "data", tmp_path / "out", model="m", batch_size=4)
    merged = [c for c in vlm.calls if c["merged"]]
    assert len(merged) == 1 and merged[0]["images"] == [2]  # one 2-tile block (fake: 1 tile per image)
    plain = FakeVLM(sample.answer, with_prepare=False)  # a model without prepare_images gets the image list
    evaluate(plain, ["mmmu"], tmp_path / "data", tmp_path / "out2", model="m")
    assert sorted(n for c in plain.calls for n in c["images"]) == [1, 1, 2]


def test_scoring_options(tmp_path):
    sample = SAMPLES["chartqa"](tmp_path / "data")
    evaluate(FakeVLM(sample.answer), ["chartqa"], tmp_path / "data", tmp_path / "out", model="m")
    # gold-denominator order: 10 vs 10.52 becomes right -> human 100, augmented 100
    assert score_run(tmp_path / "out" / "chartqa" / "tiles-12", {"chartqa_order": "gold"})["score"] == 100.0
    sample = SAMPLES["textvqa"](tmp_path / "data")
    evaluate(FakeVLM(sample.answer), ["textvqa"], tmp_path / "data", tmp_path / "out", model="m")
    # official normaliser: "Stop" vs 10x "stop" compares raw -> 0; "two" -> 2 -> 0.6 ; mean 30
    assert score_run(tmp_path / "out" / "textvqa" / "tiles-24", {"vqa_normalizer": "official"})["score"] == 30.0


def test_bad_data_directories_give_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="TextVQA"):
        load_items(BENCHMARKS["textvqa"], tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_items(BENCHMARKS["mme"], tmp_path / "missing")
    SAMPLES["docvqa"](tmp_path)
    (tmp_path / "docvqa" / "val" / "documents" / "doc2.png").unlink()
    with pytest.raises(FileNotFoundError, match="doc2.png"):
        load_items(BENCHMARKS["docvqa"], tmp_path / "docvqa")
    SAMPLES["synth"](tmp_path)
    (tmp_path / "synth" / "meta_other_test.json").write_text(json.dumps({"x": {"annotation": "a"}}))
    with pytest.raises(FileNotFoundError, match="exactly one meta"):
        load_items(BENCHMARKS["synth"], tmp_path / "synth")


def test_test_split_without_answers_is_predicted_not_scored(tmp_path):
    d = tmp_path / "docvqa"
    SAMPLES["docvqa"](tmp_path)
    path = d / "val" / "val_v1.0.json"
    data = json.loads(path.read_text())
    for q in data["data"]:
        del q["answers"]
    path.rename(d / "val" / "test_v1.0.json")
    (d / "val" / "test_v1.0.json").write_text(json.dumps(data))
    res = evaluate(FakeVLM(lambda q, n: "x"), ["docvqa"], d, tmp_path / "out", model="m")[0]
    assert res["score"] is None and "no ground truth" in res["note"] and res["n"] == 2
    assert "| docvqa | 18 |" in write_report(tmp_path / "out")["markdown"]


def test_synth_reads_tessera_synth_output(tmp_path):
    from tessera.synth import generate

    generate(tmp_path / "synth", n_train=2, n_test=6, seed=3, tile_size=56, progress=False)
    lines = [json.loads(x) for x in (tmp_path / "synth" / "test.jsonl").read_text().splitlines()]
    pairs = [(x["conversations"][0]["value"].removeprefix("<image>\n"), x["conversations"][1]["value"]) for x in lines]
    gold = {}
    for question, answer in pairs:
        gold.setdefault(question, answer)  # an oracle keyed by question (repeated questions get the first answer)
    expected = 100 * sum(gold[q] == a for q, a in pairs) / len(pairs)
    items = load_items(BENCHMARKS["synth"], tmp_path / "synth")  # meta_test.json is picked over meta_train.json
    assert [i.id for i in items] == [str(x["id"]) for x in lines]
    assert all("<image>" not in i.prompt and len(i.images) == 1 for i in items)
    res = evaluate(FakeVLM(lambda q, n: gold[q].upper()), ["synth"], tmp_path / "synth", tmp_path / "out",
                   model="m", max_tiles=[2])[0]
    assert res["score"] == pytest.approx(expected) and expected > 0
    assert set(res["metrics"]["per_task"]) == {x["task"] for x in lines}


def test_ocrbench_vlmevalkit_tsv(tmp_path):
    from eval_samples import b64_png, write_tsv

    write_tsv(tmp_path / "ocrbench" / "OCRBench.tsv", ["index", "image", "question", "answer", "category"], [
        [0, b64_png(), "what is written?", "['CHECK', 'check']", "Regular Text Recognition"],
        [1, "0", "write the formula", "['x ^ 2']", "Handwritten Mathematical Expression Recognition"],
    ])
    items = load_items(BENCHMARKS["ocrbench"], tmp_path / "ocrbench")
    assert items[0].answer == ["CHECK", "check"] and items[1].meta["hme"] and items[1].images == items[0].images
    vlm = FakeVLM(lambda q, n: "It says check." if "written" in q else "X^2")  # HME is case-sensitive: miss
    res = evaluate(vlm, ["ocrbench"], tmp_path / "ocrbench", tmp_path / "out", model="m")[0]
    assert res["score"] == 1.0 and res["metrics"]["final_score_norm"] == 0.1
