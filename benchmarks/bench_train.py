"""Training-step throughput and MFU of tessera's training forward/backward + AdamW, random weights.

One step = forward + backward of a synthetic micro-batch (``--batch`` samples of ``--seq`` tokens, each with
``--tiles`` image tiles whose ``<IMG_CONTEXT>`` tokens are part of the sequence, loss on the last
``--label-frac`` of every sample), gradient clipping at 1.0 and an AdamW step, all parameters trained (a
stage-2 full fine-tune), exactly as :mod:`tessera.train.engine` runs it. Reports the median step time,
tokens/s (LLM tokens, image tokens included) and MFU = model FLOPs / (step time x peak), where the peak
is a dense matmul measured on the same device in the same run (bf16 on GPU, fp32 on CPU) unless
``--peak-tflops`` gives one. Model FLOPs count 3 x the forward matmuls (weights, attention scores and the
head on labelled positions only), not the recomputation of activation checkpointing.

    python benchmarks/bench_train.py                                   # tiny model on CPU
    python benchmarks/bench_train.py --preset mini-internvl-chat-2b-v1-5 --device cuda --batch 2 --tiles 13 --seq 4096
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from tessera.config import ChatConfig
from tessera.models.internvl import InternVLChatModel
from tessera.train.forward import TrainModule
from tessera.train.model_setup import init_weights
from tessera.train.optim import param_groups


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measured_peak_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Dense matmul throughput of this device (the ceiling MFU is measured against)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps, t0 = (20 if device.type == "cuda" else 5), time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def model_flops(cfg: ChatConfig, model: InternVLChatModel, batch: int, seq: int, tiles: int, labels: int) -> float:
    """Training FLOPs of one step: 3 x forward (matmul weights + attention + head on labelled tokens)."""
    v, llm = cfg.vision_config, cfg.llm_config
    vit_tokens = (cfg.image_size // v.patch_size) ** 2 + 1
    vit_params = sum(p.numel() for n, p in model.vision_model.named_parameters() if p.ndim >= 2 and "embedding" not in n)
    mlp_params = sum(p.numel() for p in model.mlp1.parameters() if p.ndim >= 2)
    lm = model.language_model
    llm_params = sum(p.numel() for n, p in lm.model.layers.named_parameters() if p.ndim >= 2)
    t = batch * tiles
    fwd = 2 * vit_params * t * vit_tokens + 4 * v.num_hidden_layers * vit_tokens**2 * v.hidden_size * t
    fwd += 2 * mlp_params * t * cfg.num_image_token
    fwd += 2 * llm_params * batch * seq + 4 * llm.num_hidden_layers * seq**2 * llm.hidden_size * batch
    fwd += 2 * llm.hidden_size * llm.vocab_size * batch * labels
    return 3 * fwd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny-internlm2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto", help="compute dtype: auto (bf16 on GPU, fp32 on CPU), bf16, fp32")
    ap.add_argument("--batch", type=int, default=8, help="samples per micro-batch")
    ap.add_argument("--seq", type=int, default=256, help="tokens per sample (image tokens included)")
    ap.add_argument("--tiles", type=int, default=1, help="image tiles per sample")
    ap.add_argument("--label-frac", type=float, default=0.25, help="fraction of each sample with a loss")
    ap.add_argument("--grad-checkpoint", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32, "bf16": torch.bfloat16,
             "fp32": torch.float32}[args.dtype]
    cfg = ChatConfig.from_name(args.preset)
    torch.manual_seed(0)
    with torch.device(device):
        model = InternVLChatModel(cfg)
    init_weights(model)
    model.train()
    model.img_context_token_id = cfg.llm_config.vocab_size - 7  # any id; the synthetic prompt uses it
    model.vision_model.set_grad_checkpointing(args.grad_checkpoint)
    model.language_model.gradient_checkpointing = args.grad_checkpoint
    tm = TrainModule(model)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-5, fused=device.type == "cuda")

    n_img = args.tiles * cfg.num_image_token
    if n_img + 8 > args.seq:
        raise SystemExit(f"--seq {args.seq} is too short for {args.tiles} tiles x {cfg.num_image_token} image tokens")
    ids = torch.randint(0, cfg.llm_config.vocab_size - 16, (args.batch, args.seq), device=device)
    ids[:, 2:2 + n_img] = model.img_context_token_id
    labels = torch.full_like(ids, -100)
    n_label = max(1, int(args.seq * args.label_frac))
    labels[:, -n_label:] = ids[:, -n_label:]
    positions = torch.arange(args.seq, device=device).expand(args.batch, -1)
    s = cfg.image_size
    pixels = torch.randn(args.batch * args.tiles, 3, s, s, device=device)
    flags = torch.ones(args.batch * args.tiles, dtype=torch.long, device=device)
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> float:
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = tm(ids, labels, positions, pixels, flags)
        (loss / (args.batch * n_label)).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        return time.perf_counter() - t0

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.steps)]
    t = statistics.median(times)
    peak = args.peak_tflops or measured_peak_tflops(device, dtype)
    flops = model_flops(cfg, model, args.batch, args.seq, args.tiles, n_label - 1)
    result = {
        "preset": args.preset, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()), "batch": args.batch, "seq": args.seq,
        "tiles": args.tiles, "grad_checkpoint": args.grad_checkpoint, "step_s_median": t,
        "step_s_min": min(times), "tokens_per_s": args.batch * args.seq / t, "model_tflops_per_step": flops / 1e12,
        "achieved_tflops": flops / t / 1e12, "peak_tflops": peak, "mfu": flops / t / 1e12 / peak,
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.preset} on {result['device']} ({result['dtype']}, {result['threads']} threads), "
          f"{result['params'] / 1e6:.2f} M params, batch {args.batch} x {args.seq} tokens, {args.tiles} tile(s)/sample")
    print(f"  step {t * 1e3:.1f} ms (median of {args.steps}; min {min(times) * 1e3:.1f} ms)  "
          f"{result['tokens_per_s']:,.0f} tokens/s  {result['achieved_tflops']:.3f} TFLOP/s  "
          f"MFU {result['mfu'] * 100:.1f}% of {peak:.3f} TFLOP/s (measured matmul peak)"
          + (f"  peak mem {result['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in result else ""))


if __name__ == "__main__":
    main()
