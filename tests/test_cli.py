"""The tessera command: chat (one-shot and interactive), info, bench, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tessera
import tessera.generation as generation
from tessera.cli import main

from conftest import CONFORMANCE, conformance_path

MODEL = "mini-internvl-chat-2b-v1-5-tiny"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "tessera.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def vlm():
    return tessera.load(conformance_path("models", MODEL), dtype="float32")


def test_one_shot_chat_streams_the_official_answer(vlm):
    image = CONFORMANCE / "preprocess/images/doc_1000x700.png"
    res = run("chat", "--model", str(conformance_path("models", MODEL)), "--dtype", "float32", "--device", "cpu",
              "--image", str(image), "--max-new-tokens", "8", "--max-tiles", "6", "-v", "What is this?")
    assert res.returncode == 0, res.stderr
    expected = vlm.chat("What is this?", [image], max_new_tokens=8, max_tiles=6)
    assert res.stdout == expected + "\n"
    assert "3x2 tiles + thumbnail" in res.stderr and "time to first token" in res.stderr


def test_interactive_session_keeps_history_and_images(vlm, capsys, monkeypatch):
    image = CONFORMANCE / "preprocess/images/small_320x240.png"
    lines = iter([f"/image {image}", "What is this?", "And now?", "/reset", "Hello", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    code = main(["chat", "--model", str(conformance_path("models", MODEL)), "--dtype", "float32",
                 "--device", "cpu", "--max-new-tokens", "6"])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    first, hist = vlm.chat("What is this?", [image], max_new_tokens=6, return_history=True)
    second = vlm.chat("And now?", [image], history=hist, max_new_tokens=6)
    third = vlm.chat("Hello", max_new_tokens=6)
    assert out == [first, second, third]


def test_interactive_through_stdin():
    res = run("chat", "--model", str(conformance_path("models", MODEL)), "--device", "cpu",
              "--max-new-tokens", "4", stdin="Hello\n/quit\n")
    assert res.returncode == 0, res.stderr
    assert "Commands:" in res.stderr and res.stdout.strip()


@pytest.mark.parametrize(
    "args, message",
    [
        (["chat", "--image", "/nonexistent.png", "hi"], "no such file: /nonexistent.png"),
        (["chat", "--model", "/no/such/dir", "hi"], "no such directory"),
        (["info", "--model", "/no/such/dir"], "no such directory"),
    ],
)
def test_errors_are_one_line(args, message):
    res = run(*args)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: {res.stderr.strip()[7:]}"]
    assert message in res.stderr and "Traceback" not in res.stderr


def test_bad_image_is_one_line(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image")
    res = run("chat", "--model", str(conformance_path("models", MODEL)), "--image", str(bad), "hi")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1


def test_info(capsys):
    assert main(["info", "--model", str(conformance_path("models", MODEL))]) == 0
    out = capsys.readouterr().out
    assert "InternLM2ForCausalLM" in out and "internlm2-chat" in out and "56 px, 4 tokens/tile" in out
    assert main(["info", "--model", "internvl-chat-v1-5"]) == 0
    assert "25.514 B" in capsys.readouterr().out


def test_bench_runs_on_cpu(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "--preset", "tiny-phi3", "--tiles", "2", "--new-tokens", "8", "--batch", "2",
                 "--modes", "eager,continuous", "--repeats", "1", "--device", "cpu", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["schema"] == 1 and report["device"] == "cpu"
    for mode in ("eager", "continuous"):
        r = report["results"][mode]
        assert r["vision_ms"] > 0 and r["ttft_ms"] > 0 and r["decode_tok_s"] > 0 and r["batch_tok_s"] > 0
    assert main(["bench", "--modes", "eager,turbo"]) == 2
    assert set(report["floors"]) == {"vision_ms", "ttft_ms", "decode_tok_s", "batch_tok_s"}
    assert "time to first token" in capsys.readouterr().out


def test_bench_keeps_the_other_modes_when_one_fails(tmp_path, capsys, monkeypatch):
    import tessera.bench as bench

    real = bench.run_mode

    def flaky(model, cfg, s, mode, device):
        if mode == "continuous":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(model, cfg, s, mode, device)

    monkeypatch.setattr(bench, "run_mode", flaky)
    path = tmp_path / "bench.json"
    assert main(["bench", "--preset", "tiny-phi3", "--tiles", "1", "--new-tokens", "4", "--batch", "2",
                 "--modes", "eager,continuous", "--repeats", "1", "--device", "cpu", "--json", str(path)]) == 1
    report = json.loads(path.read_text())
    assert set(report["results"]) == {"eager"} and "out of memory" in report["errors"]["continuous"]
    captured = capsys.readouterr()
    assert "mode continuous failed" in captured.err and "time to first token" in captured.out


def test_chat_compile_flag_loads_a_compiling_vlm(vlm, capsys, monkeypatch):
    loaded = []
    real = tessera.load

    def spy(*args, **kwargs):
        loaded.append(kwargs.get("compile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tessera, "load", spy)
    monkeypatch.setattr(generation, "compiled_step", lambda lm: generation._step)  # compiled for real elsewhere
    args = ["chat", "--model", str(conformance_path("models", MODEL)), "--dtype", "float32", "--device", "cpu",
            "--max-new-tokens", "4", "Hello"]
    assert main(args) == 0 and main([*args[:-1], "--compile", "Hello"]) == 0
    assert loaded == [False, True]
    plain, compiled = capsys.readouterr().out.splitlines()
    assert plain == compiled == vlm.chat("Hello", max_new_tokens=4)
