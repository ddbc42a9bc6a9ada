"""``torchrun --nproc_per_node 2`` on the tiny conformance checkpoint (gloo, CPU, batch size 1) writes exactly
the predictions and scores of a single process."""

import json
import os
import subprocess
import sys

from eval_samples import SAMPLES

from conftest import conformance_path

BENCHES = ("textvqa", "mmmu")


def _run(cmd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_tiny_checkpoint_torchrun_matches_single_process(tmp_path):
    model = conformance_path("models", "mini-internvl-chat-2b-v1-5-tiny")
    for name in BENCHES:
        SAMPLES[name](tmp_path / "data")
    args = ["--model", str(model), "--bench", ",".join(BENCHES), "--data", str(tmp_path / "data"),
            "--max-new-tokens", "4", "--batch-size", "1", "--max-tiles", "2", "--device", "cpu", "--no-progress"]
    _run([sys.executable, "-m", "tessera.eval", *args, "--out", str(tmp_path / "one")])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "-m", "tessera.eval", *args, "--out", str(tmp_path / "two")])
    for name in BENCHES:
        one, two = (tmp_path / d / name / "tiles-2" for d in ("one", "two"))
        assert (one / "predictions.jsonl").read_text() == (two / "predictions.jsonl").read_text()
        assert json.loads((one / "scores.json").read_text()) == json.loads((two / "scores.json").read_text())
