"""Peak host memory while loading a sharded checkpoint, against the checkpoint's size.

Writes a synthetic checkpoint (random weights, official layout, bf16, several shards) of a few hundred MB,
then loads it in fresh processes and reports each process's peak RSS above the interpreter's baseline:

* ``tessera``: ``tessera.checkpoint.load_model`` (model built on the meta device, shards assigned one
  tensor at a time, cast on the fly);
* ``naive``: the straightforward way (build the model with real random init, read every shard into one
  state dict, ``load_state_dict``), which holds the model twice.

Usage: python benchmarks/bench_load_memory.py [--layers 6] [--dtype bfloat16] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, torch
from pathlib import Path
path, dtype, mode = sys.argv[1], getattr(torch, sys.argv[2]), sys.argv[3]
def rss_mib():  # VmHWM: this process's own peak (ru_maxrss can inherit the parent's peak across exec)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024
import tessera.checkpoint as ck
from tessera.config import ChatConfig
from tessera.models.internvl import InternVLChatModel
base = rss_mib()
if mode == "tessera":
    model, _ = ck.load_model(path, dtype=dtype)
else:
    from safetensors.torch import load_file
    model = InternVLChatModel(ChatConfig.from_file(path)).to(dtype)
    state = {}
    for f in ck.shard_files(Path(path)):
        state.update(load_file(str(f)))
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    del state
n = sum(p.numel() * p.element_size() for p in model.parameters())
touched = sum(float(p.detach().view(-1)[:: 4096 // p.element_size()].float().sum()) for p in model.parameters())
print(json.dumps({"mode": mode, "peak_mib": rss_mib() - base, "model_mib": n / 2**20}))
"""


def make_checkpoint(out: Path, layers: int) -> int:
    import torch

    from tessera.bench import build_random_model
    from tessera.checkpoint import save_model
    from tessera.config import ChatConfig

    cfg = ChatConfig.from_name("mini-internvl-chat-2b-v1-5")
    cfg.vision_config.num_hidden_layers = layers
    cfg.llm_config.num_hidden_layers = layers
    model = build_random_model(cfg, torch.device("cpu"), torch.bfloat16)
    save_model(model, out, max_shard_size=100 * 2**20)
    return sum(f.stat().st_size for f in out.glob("*.safetensors"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16,float32", help="comma list of target dtypes")
    ap.add_argument("--keep", default=None, help="write the checkpoint here and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(args.keep or tmp) / "ckpt"
        size = make_checkpoint(ckpt, args.layers)
        shards = len(list(ckpt.glob("*.safetensors")))
        print(f"checkpoint: {size / 2**20:.0f} MiB (bf16) in {shards} shards")
        print("| loader | target dtype | model in target dtype (MiB) | peak RSS above baseline (MiB) | peak / model |")
        print("|---|---|---|---|---|")
        for dtype in args.dtype.split(","):
            for mode in ("tessera", "naive"):
                res = subprocess.run([sys.executable, "-c", CHILD, str(ckpt), dtype, mode],
                                     capture_output=True, text=True, check=True)
                r = json.loads(res.stdout.strip().splitlines()[-1])
                print(f"| {mode} | {dtype} | {r['model_mib']:.0f} | {r['peak_mib']:.0f} | "
                      f"{r['peak_mib'] / r['model_mib']:.2f} |")


if __name__ == "__main__":
    main()
