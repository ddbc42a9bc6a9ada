"""A run killed with SIGKILL and resumed gives the same loss curve as an uninterrupted run, step for step
(with JPEG augmentation, drop path, gradient accumulation, length grouping, packing and a data-loader
worker in play)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import yaml
from safetensors.torch import load_file
from synthetic import tiny_recipe, write_dataset

from tessera.train import TrainConfig, train
from tessera.train.checkpointing import find_latest

from conftest import REPO, conformance_path

STEPS = 16


def recipe(meta, out):
    return tiny_recipe(
        meta, out, tokenizer_dir=conformance_path("tokenizers", "internlm2"),
        model={"drop_path_rate": 0.2, "max_dynamic_patch": 4},
        data={"num_workers": 1, "group_by_length": True, "packing": True},
        optim={"max_steps": STEPS, "per_device_batch_size": 2, "gradient_accumulation_steps": 2,
               "lr_scheduler": "cosine", "warmup_steps": 3, "weight_decay": 0.05},
        run={"save_steps": 2, "save_total_limit": 3},
    )


def metrics(path):
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_and_resume_reproduces_the_uninterrupted_run(tmp_path):
    meta = write_dataset(tmp_path / "data", 6, size=(112, 56), text_only=1, data_augment=True)
    ref = train(TrainConfig.from_dict(recipe(meta, tmp_path / "ref")))

    out = tmp_path / "killed"
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe(meta, out)))
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "tessera.train", str(recipe_file)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "checkpoint-4").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint-4 within 60 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "final").exists(), "the run finished before it could be killed"
    killed_at = int(find_latest(out).name.split("-")[1])
    assert 4 <= killed_at < STEPS

    resumed = train(TrainConfig.from_dict(recipe(meta, out)).with_overrides(["run.resume=true"]))
    a, b = metrics(tmp_path / "ref"), metrics(out)
    assert [r["step"] for r in b] == list(range(1, STEPS + 1))
    for ra, rb in zip(a, b):
        for key in ("loss", "grad_norm", "lr"):
            assert abs(ra[key] - rb[key]) <= 1e-6 * max(1.0, abs(ra[key])), (ra["step"], key, ra[key], rb[key])
        assert ra["tokens"] == rb["tokens"]
    wa = load_file(str(ref.final_dir / "model.safetensors"))
    wb = load_file(str(resumed.final_dir / "model.safetensors"))
    assert all((wa[k] - wb[k]).abs().max() <= 1e-6 for k in wa)
