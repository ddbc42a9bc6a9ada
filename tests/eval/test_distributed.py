"""Two-process ``torchrun`` evaluation (gloo, CPU) gives exactly the predictions and scores of one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

from eval_samples import SAMPLES

HERE = Path(__file__).resolve().parent
BENCHES = ("textvqa", "mme", "mmbench_en")


def _env(log_dir: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    env.update(OMP_NUM_THREADS="1", EVAL_FAKE_LOG=str(log_dir))
    return env


def _run(cmd: list[str], log_dir: Path) -> None:
    log_dir.mkdir()
    proc = subprocess.run(cmd, env=_env(log_dir), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_torchrun_two_ranks_match_one_process(tmp_path):
    for name in BENCHES:
        SAMPLES[name](tmp_path / "data")
    args = ["--model", "fake", "--bench", ",".join(BENCHES), "--data", str(tmp_path / "data"),
            "--vlm-factory", "eval_fakes:make", "--batch-size", "2", "--no-progress", "--max-tiles", "2,6"]
    _run([sys.executable, "-m", "tessera.eval", *args, "--out", str(tmp_path / "one")], tmp_path / "log1")
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "-m", "tessera.eval", *args, "--out", str(tmp_path / "two")], tmp_path / "log2")

    for name in BENCHES:
        for tiles in (2, 6):
            one, two = (tmp_path / d / name / f"tiles-{tiles}" for d in ("one", "two"))
            assert (one / "predictions.jsonl").read_bytes() == (two / "predictions.jsonl").read_bytes()
            assert json.loads((one / "scores.json").read_text()) == json.loads((two / "scores.json").read_text())
            assert not list(two.glob("predictions.rank*"))
    assert (tmp_path / "one" / "summary.md").read_text() == (tmp_path / "two" / "summary.md").read_text()

    # both ranks did work, on disjoint shards that cover everything the single process did
    rank0 = (tmp_path / "log2" / "rank0.txt").read_text().splitlines()
    rank1 = (tmp_path / "log2" / "rank1.txt").read_text().splitlines()
    single = (tmp_path / "log1" / "rank0.txt").read_text().splitlines()
    assert rank0 and rank1 and len(rank0) + len(rank1) == len(single)
    assert sorted(rank0 + rank1) == sorted(single)
