"""End to end on the tiny conformance checkpoint (random weights: its answers are noise, so these tests check
that the pipeline runs, files appear, scores are consistent with the saved predictions and resume works)."""

import json
import math

import pytest
from eval_samples import SAMPLES

import tessera
from tessera.eval import evaluate, score_run, write_report

from conftest import conformance_path

BENCHES = ("textvqa", "mmmu", "hallusionbench", "synth")


class Proxy:
    """Counts batch_chat calls and can simulate an interruption after ``fail_after`` calls."""

    def __init__(self, vlm, fail_after=None):
        self.vlm, self.config, self.calls, self.fail_after = vlm, vlm.config, 0, fail_after

    def prepare_images(self, images, max_tiles=None):
        return self.vlm.prepare_images(images, max_tiles)

    def batch_chat(self, *args, **kwargs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return self.vlm.batch_chat(*args, **kwargs)


@pytest.fixture(scope="module")
def tiny():
    return tessera.load(conformance_path("models", "mini-internvl-chat-2b-v1-5-tiny"), device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name in BENCHES:
        SAMPLES[name](root)
    return root


def _run(vlm, data, out):
    return evaluate(vlm, BENCHES, data, out, model="mini-internvl-chat-2b-v1-5-tiny", max_new_tokens=6,
                    batch_size=2, progress=False)


def test_tiny_checkpoint_pipeline_and_resume(tiny, data, tmp_path):
    full = _run(Proxy(tiny), data, tmp_path / "full")
    assert [r["benchmark"] for r in full] == list(BENCHES)
    assert full[-1]["max_tiles"] == tiny.config.max_dynamic_patch  # synth default: the model's own setting
    for result in full:
        run_dir = tmp_path / "full" / result["benchmark"] / f"tiles-{result['max_tiles']}"
        records = [json.loads(x) for x in (run_dir / "predictions.jsonl").read_text().splitlines()]
        assert len(records) == result["n"] > 0
        assert all(isinstance(r["prediction"], str) for r in records)
        assert math.isfinite(result["score"]) and 0.0 <= result["score"] <= 100.0
        assert score_run(run_dir)["score"] == result["score"]  # re-derived from the saved file
    assert "| mmmu | 6 | 3 |" in write_report(tmp_path / "full")["markdown"]

    again = _run(Proxy(tiny), data, tmp_path / "again")  # greedy decoding is deterministic
    for a, b in zip(full, again):
        assert a["score"] == b["score"] and a["metrics"] == b["metrics"]

    broken = Proxy(tiny, fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        _run(broken, data, tmp_path / "resumed")
    resumed = Proxy(tiny)
    results = _run(resumed, data, tmp_path / "resumed")
    assert 0 < resumed.calls < 9
    assert [r["score"] for r in results] == [r["score"] for r in full]
    for r in full:
        rel = f"{r['benchmark']}/tiles-{r['max_tiles']}/predictions.jsonl"
        assert (tmp_path / "resumed" / rel).read_text() == (tmp_path / "full" / rel).read_text()

    idle = Proxy(tiny)
    _run(idle, data, tmp_path / "resumed")
    assert idle.calls == 0
