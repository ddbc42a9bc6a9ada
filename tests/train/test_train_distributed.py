"""Two CPU processes (torchrun, gloo) with DDP or FSDP2 train like one process with the same global batch,
and an FSDP run resumes from an FSDP checkpoint.

One torchrun launch runs the three trainings one after the other through the CLI entry point, in one
process group, which saves two start-ups."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from safetensors.torch import load_file
from synthetic import tiny_recipe, write_dataset

from tessera.train import TrainConfig, train

from conftest import REPO, conformance_path

STEPS = 4
LAUNCHER = """import sys
import torch.distributed as dist
from tessera.train.cli import main
dist.init_process_group("gloo")  # one group for all runs (each run leaves a caller's group alive)
for recipe in sys.argv[1:]:
    if main([recipe]) != 0:
        sys.exit(1)
dist.destroy_process_group()
"""


def recipe(meta, out, per_device, **run):
    return tiny_recipe(
        meta, out, tokenizer_dir=conformance_path("tokenizers", "internlm2"),
        optim={"max_steps": STEPS, "per_device_batch_size": per_device, "lr_scheduler": "cosine",
               "weight_decay": 0.05},
        run={"save_steps": 2, **run},
    )


def losses(out):
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one_with_ddp_and_fsdp(tmp_path):
    meta = write_dataset(tmp_path / "data", 7, size=(112, 56), text_only=2)
    train(TrainConfig.from_dict(recipe(meta, tmp_path / "single", 4)))
    files = []
    for parallel in ("ddp", "fsdp"):
        files.append(tmp_path / f"{parallel}.yaml")
        files[-1].write_text(yaml.safe_dump(recipe(meta, tmp_path / parallel, 2, parallel=parallel)))
    files.append(tmp_path / "fsdp_resume.yaml")  # FSDP resuming from an FSDP checkpoint
    files[-1].write_text(yaml.safe_dump(recipe(
        meta, tmp_path / "fsdp_resume", 2, parallel="fsdp", resume=str(tmp_path / "fsdp" / "checkpoint-2"))))
    (tmp_path / "launch.py").write_text(LAUNCHER)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "launch.py"), *map(str, files)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ref = losses(tmp_path / "single")
    wa = load_file(str(tmp_path / "single" / "final" / "model.safetensors"))
    for parallel in ("ddp", "fsdp"):
        out = tmp_path / parallel
        assert f"2 process(es) x 2 x 1), {parallel}" in proc.stdout
        got = losses(out)
        assert len(got) == STEPS
        for a, b in zip(ref, got):
            assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (parallel, ref, got)
        wb = load_file(str(out / "final" / "model.safetensors"))
        assert wa.keys() == wb.keys()
        assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-4, parallel
        assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
        assert {p.name for p in (out / "checkpoint-4" / "training_state").glob("rng_rank*.pt")} == {
            "rng_rank0.pt", "rng_rank1.pt"}
    resumed = [json.loads(x) for x in (tmp_path / "fsdp_resume" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [3, 4]
    assert all(abs(r["loss"] - a) <= 1e-5 * max(1.0, a) for r, a in zip(resumed, losses(tmp_path / "fsdp")[2:]))


def test_run_device_names_resolve_to_an_indexed_gpu():
    """``run.device=cuda`` in one process failed in ``torch.cuda.set_device`` (it needs an index); it now means
    this process's GPU, as ``auto`` does where a GPU is present."""
    from tessera.train.distributed import resolve_device

    assert str(resolve_device("cuda", 0, cuda_available=True)) == "cuda:0"
    assert str(resolve_device("cuda", 3, cuda_available=True)) == "cuda:3"
    assert str(resolve_device("cuda:1", 0, cuda_available=True)) == "cuda:1"
    assert str(resolve_device("auto", 2, cuda_available=True)) == "cuda:2"
    assert str(resolve_device("auto", 2, cuda_available=False)) == "cpu"
    assert str(resolve_device("cpu", 0, cuda_available=True)) == "cpu"
