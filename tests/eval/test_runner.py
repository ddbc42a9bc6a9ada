"""Runner behaviour: resume after an interruption, pinned settings, --limit, tile sweeps + report, CLI."""

import argparse
import json

import pytest
from eval_fakes import FakeVLM
from eval_samples import SAMPLES

from tessera.eval import evaluate, write_report
from tessera.eval.cli import main, register
from tessera.eval.paper import checkpoint_key, paper_number


def _read(path):
    return path.read_text(encoding="utf-8")


def test_resume_after_interruption_gives_same_scores(tmp_path):
    sample = SAMPLES["mme"](tmp_path / "data")  # 8 questions
    full = evaluate(FakeVLM(sample.answer), ["mme"], tmp_path / "data", tmp_path / "full", model="m", batch_size=3)

    broken = FakeVLM(sample.answer, fail_after=1)  # one batch of 3 reaches the disk, then "Ctrl-C"
    with pytest.raises(KeyboardInterrupt):
        evaluate(broken, ["mme"], tmp_path / "data", tmp_path / "out", model="m", batch_size=3)
    run_dir = tmp_path / "out" / "mme" / "tiles-12"
    rank_file = run_dir / "predictions.rank0.jsonl"
    assert len(_read(rank_file).splitlines()) == 3 and not (run_dir / "predictions.jsonl").exists()
    with open(rank_file, "a", encoding="utf-8") as f:
        f.write('{"id": "existence/e2/1", "predic')  # a line cut by the interruption

    resumed = FakeVLM(sample.answer)
    again = evaluate(resumed, ["mme"], tmp_path / "data", tmp_path / "out", model="m", batch_size=3)
    assert sum(len(c["questions"]) for c in resumed.calls) == 5  # only the missing ones
    assert again[0]["score"] == full[0]["score"] == pytest.approx(325.0)
    assert again[0]["metrics"] == full[0]["metrics"]
    assert _read(run_dir / "predictions.jsonl") == _read(tmp_path / "full" / "mme" / "tiles-12" / "predictions.jsonl")

    idle = FakeVLM(sample.answer)  # everything done: nothing is asked
    assert evaluate(idle, ["mme"], tmp_path / "data", tmp_path / "out", model="m")[0]["score"] == 325.0
    assert idle.calls == []


def test_resume_refuses_other_settings(tmp_path):
    sample = SAMPLES["textvqa"](tmp_path / "data")
    evaluate(FakeVLM(sample.answer), ["textvqa"], tmp_path / "data", tmp_path / "out", model="m")
    with pytest.raises(ValueError, match="max_new_tokens: saved 10 vs now 5"):
        evaluate(FakeVLM(sample.answer), ["textvqa"], tmp_path / "data", tmp_path / "out", model="m",
                 max_new_tokens=5)
    with pytest.raises(ValueError, match="model"):
        evaluate(FakeVLM(sample.answer), ["textvqa"], tmp_path / "data", tmp_path / "out", model="other")


def test_limit_and_growing_limit_resume(tmp_path):
    sample = SAMPLES["mme"](tmp_path / "data")
    first = FakeVLM(sample.answer)
    res = evaluate(first, ["mme"], tmp_path / "data", tmp_path / "out", model="m", limit=2)
    assert res[0]["n"] == 2 and sum(len(c["questions"]) for c in first.calls) == 2
    second = FakeVLM(sample.answer)
    res = evaluate(second, ["mme"], tmp_path / "data", tmp_path / "out", model="m")
    assert res[0]["n"] == 8 and sum(len(c["questions"]) for c in second.calls) == 6
    with pytest.raises(ValueError, match="positive"):
        evaluate(second, ["mme"], tmp_path / "data", tmp_path / "out", model="m", limit=0)


def test_tile_sweep_report_and_plot(tmp_path):
    text = SAMPLES["textvqa"](tmp_path / "data")
    chart = SAMPLES["chartqa"](tmp_path / "data")
    vlm = FakeVLM(lambda q, n: text.answer(q, n) if "sign" in q or "cats" in q else chart.answer(q, n))
    results = evaluate(vlm, ["textvqa", "chartqa"], tmp_path / "data", tmp_path / "out",
                       model="/ckpts/InternVL-Chat-V1-5/", max_tiles=[1, 4, 12])
    assert [(r["benchmark"], r["max_tiles"]) for r in results] == [
        ("textvqa", 1), ("textvqa", 4), ("textvqa", 12), ("chartqa", 1), ("chartqa", 4), ("chartqa", 12)]
    assert sorted({c["max_tiles"] for c in vlm.calls}) == [1, 4, 12]
    report = write_report(tmp_path / "out")
    png = tmp_path / "out" / "tiles_sweep.png"
    assert report["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads(_read(tmp_path / "out" / "summary.json"))["rows"]
    assert len(rows) == 6 and all(r["paper"] == 80.61 for r in rows if r["benchmark"] == "textvqa")
    assert "| textvqa | 4 | 2 | 80.00 % | 80.61 (24) | -0.61 |" in _read(tmp_path / "out" / "summary.md")
    assert "| chartqa | 12 | 3 | 75.00 % | 83.80 (12) | -8.80 |" in report["markdown"]


def test_paper_numbers_lookup():
    assert checkpoint_key("OpenGVLab/InternVL-Chat-V1-5") == "internvl-chat-v1-5"
    assert paper_number("OpenGVLab/InternVL-Chat-V1-5", "mme")[0] == pytest.approx(1658.37 + 533.57)
    assert paper_number("OpenGVLab/InternVL-Chat-V1-5", "docvqa")[:2] == (90.49, 18)
    assert paper_number("mini-internvl-chat-2b-v1-5-tiny", "docvqa") is None


def test_register_adds_eval_subcommand(tmp_path):
    parser = argparse.ArgumentParser(prog="tessera")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--model", "m", "--bench", "textvqa,MME", "--data", str(tmp_path),
                              "--max-tiles", "1,4,12", "--limit", "3", "--batch-size", "8"])
    assert args.func.__name__ == "run" and args.bench == ["textvqa", "MME"]
    assert (args.max_tiles, args.limit, args.batch_size, args.score_only) == ([1, 4, 12], 3, 8, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--bench", "bogus"])
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--max-tiles", "0,4"])


def test_cli_run_then_score_only(tmp_path, capsys):
    SAMPLES["chartqa"](tmp_path / "data")
    SAMPLES["ai2d"](tmp_path / "data")
    out = tmp_path / "out"
    code = main(["--model", "fake", "--bench", "chartqa,ai2d", "--data", str(tmp_path / "data"), "--out", str(out),
                 "--vlm-factory", "eval_fakes:make", "--no-progress", "--batch-size", "2"])
    assert code == 0 and "| chartqa | 12 | 3 |" in capsys.readouterr().out
    first = json.loads(_read(out / "chartqa" / "tiles-12" / "scores.json"))
    code = main(["eval", "--score-only", "--out", str(out), "--bench", "chartqa", "--chartqa-order", "gold"])
    assert code == 0
    second = json.loads(_read(out / "chartqa" / "tiles-12" / "scores.json"))
    assert second["metrics"]["order"] == "gold" and first["metrics"]["order"] == "internvl"
    assert main(["--score-only", "--out", str(tmp_path / "nothing")]) == 2
    assert main(["--bench", "ai2d"]) == 2
    assert "--data required" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--bench", "ai2d", "--data", str(tmp_path / "empty"), "--vlm-factory", "eval_fakes:make"]) == 2
    assert "ai2d: no file matching" in capsys.readouterr().err


def test_compile_flag_reaches_tessera_load(tmp_path, monkeypatch):
    import tessera
    from tessera.eval.cli import load_model

    parser = argparse.ArgumentParser(prog="tessera")
    register(parser.add_subparsers(dest="command"))
    seen = []
    monkeypatch.setattr(tessera, "load", lambda model, **kw: seen.append(kw) or "vlm")
    for extra in ([], ["--compile"]):
        args = parser.parse_args(["eval", "--model", "m", "--bench", "synth", "--data", str(tmp_path),
                                  "--device", "cpu", *extra])
        assert load_model(args, None) == "vlm"
    assert [kw["compile"] for kw in seen] == [False, True]
