"""``tessera bench``: speed of a model at its real size with random weights (no download needed).

For each mode it reports vision + projector time, time to first token, decode tokens/s at batch 1,
end-to-end generated tokens/s for a batch of B requests and peak device memory, each beside its floor:
FLOPs and bytes come from the config, and the device's ceilings (matrix-product FLOP/s, memory copy
bandwidth) are measured in the same run. Modes:

* ``eager``: tessera with compilation and CUDA graphs off (the baseline);
* ``fast``: the decode step compiled with ``torch.compile(mode="reduce-overhead")`` (CUDA graphs on GPU)
  and no host synchronisation inside the decode loop;
* ``continuous``: the server's continuous batching (eager steps); ``continuous-fast``: the same with compiled
  steps (``tessera serve --compile``).

The JSON schema (``SCHEMA_VERSION``) is stable: releases are compared with it. Top level: ``schema``,
``device``, ``preset``, ``dtype``, ``settings``, ``params``, ``ceilings`` {``matmul_tflops``,
``copy_gbps``}, ``floors`` {``vision_ms``, ``ttft_ms``, ``decode_tok_s``, ``batch_tok_s``}, ``results``:
{mode: {``vision_ms``, ``ttft_ms``, ``decode_tok_s``, ``batch_tok_s``, ``batch_ttft_ms``,
``peak_mem_gib``}}, ``ratios`` {mode: {figure: value / eager value}}, ``fractions``
{mode: {figure: fraction of its floor}} and ``errors`` {mode: message} for modes that failed (the others'
figures are kept; the command then exits 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from .config import PRESETS, ChatConfig
from .generation import Batch, ContinuousBatch, SamplingParams, generate
from .models.internvl import InternVLChatModel
from .vlm import resolve_device, resolve_dtype

SCHEMA_VERSION = 1


@dataclass
class BenchSettings:
    preset: str = "mini-internvl-chat-2b-v1-5"
    tiles: int = 13
    prompt_tokens: int | None = None  # default: image tokens + 40 text tokens
    new_tokens: int = 128
    batch: int = 8
    dtype: str = "bfloat16"
    device: str = "auto"
    modes: tuple[str, ...] = ("eager", "fast")
    repeats: int = 3
    layers: int | None = None  # override the layer counts (quick CPU runs of a real width)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats: int) -> float:
    """Median wall time in seconds over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_ceilings(device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """Matrix-product TFLOP/s and memory-copy GB/s (read + write) of this device, measured now."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = _timed(lambda: a @ b, device, 5)
    big = torch.empty(2**28 if device.type == "cuda" else 2**24, dtype=torch.uint8, device=device)
    dst = torch.empty_like(big)
    c = _timed(lambda: dst.copy_(big), device, 5)
    return {"matmul_tflops": 2 * n**3 / t / 1e12, "copy_gbps": 2 * big.numel() / c / 1e9}


def count_flops_bytes(cfg: ChatConfig, tiles: int, prompt: int, new: int, batch: int, elem: int) -> dict:
    """Analytic FLOPs and bytes for the workload (matrix products and attention only)."""
    v, llm = cfg.vision_config, cfg.llm_config
    n = (cfg.image_size // v.patch_size) ** 2 + 1
    c, i = v.hidden_size, v.intermediate_size
    vit_layer = 2 * n * (4 * c * c + 2 * c * i) + 4 * n * n * c
    proj = 2 * cfg.num_image_token * (4 * c * llm.hidden_size + llm.hidden_size**2)
    vision = tiles * (v.num_hidden_layers * vit_layer + 2 * n * 3 * v.patch_size**2 * c + proj)
    h, d, g = llm.num_attention_heads, llm.head_dim, llm.num_key_value_heads
    hidden, inter = llm.hidden_size, llm.intermediate_size
    layer_params = hidden * (h + 2 * g) * d + h * d * hidden + 3 * hidden * inter
    prefill = llm.num_hidden_layers * (2 * prompt * layer_params + 2 * prompt * prompt * h * d)
    prefill += 2 * hidden * llm.vocab_size
    weight_bytes = (llm.num_hidden_layers * layer_params + hidden * llm.vocab_size) * elem
    kv_per_token = 2 * llm.num_hidden_layers * g * d * elem
    avg_len = prompt + new / 2
    decode_bytes = weight_bytes + kv_per_token * avg_len
    batch_decode_bytes = weight_bytes + batch * kv_per_token * avg_len
    return dict(vision_flops=vision, prefill_flops=prefill, decode_bytes=decode_bytes,
                batch_decode_bytes=batch_decode_bytes)


def floors(work: dict, ceil: dict, new: int, batch: int) -> dict[str, float]:
    flops_s = ceil["matmul_tflops"] * 1e12
    bytes_s = ceil["copy_gbps"] * 1e9
    vision_s = work["vision_flops"] / flops_s
    ttft_s = vision_s + work["prefill_flops"] / flops_s
    step_s = work["decode_bytes"] / bytes_s
    batch_total = batch * ttft_s + new * work["batch_decode_bytes"] / bytes_s
    return {"vision_ms": 1e3 * vision_s, "ttft_ms": 1e3 * ttft_s, "decode_tok_s": 1 / step_s,
            "batch_tok_s": batch * new / batch_total}


def build_random_model(cfg: ChatConfig, device: torch.device, dtype: torch.dtype) -> InternVLChatModel:
    """The architecture with random weights, built directly on the device (no host copy)."""
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in the target dtype: a 26B model never exists in float32
    try:
        with torch.device(device):
            model = InternVLChatModel(cfg).to(dtype)
    finally:
        torch.set_default_dtype(previous)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=p.shape[-1] ** -0.5)
        elif name.endswith(("ls1", "ls2")):
            p.data.fill_(0.1)
    model.img_context_token_id = cfg.llm_config.vocab_size - 1
    return model.eval()


def _workload(cfg: ChatConfig, s: BenchSettings, batch: int, device) -> Batch:
    img_tokens = s.tiles * cfg.num_image_token
    prompt = s.prompt_tokens or img_tokens + 40
    if prompt < img_tokens + 2:
        raise ValueError(f"--prompt-tokens {prompt} cannot hold {s.tiles} tiles ({img_tokens} image tokens)")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(batch):
        text = torch.randint(3, cfg.llm_config.vocab_size - 10, (prompt - img_tokens,), generator=gen).tolist()
        rows.append(text[:2] + [cfg.llm_config.vocab_size - 1] * img_tokens + text[2:])
    pixels = torch.randn(batch * s.tiles, 3, cfg.image_size, cfg.image_size, generator=gen)
    return Batch.from_ids(rows, 0, pixels.to(device), device)


def _generate_fns(model, s: BenchSettings, mode: str, max_len: int):
    """``first_token(batch)`` and ``full(batch)`` through :func:`generate` (eager, or compiled for "fast")."""
    compile = mode == "fast"
    check = 16 if compile else 1

    def first_token(batch: Batch) -> None:
        params = [SamplingParams(max_new_tokens=1)] * batch.input_ids.shape[0]
        for tokens in generate(model, batch, params, 0, compile=compile):
            tokens.cpu()
            break

    def full(batch: Batch) -> None:
        params = [SamplingParams(max_new_tokens=s.new_tokens)] * batch.input_ids.shape[0]
        torch.stack(list(generate(model, batch, params, 0, compile=compile, check_every=check))).cpu()

    return first_token, full


def _continuous_fns(model, s: BenchSettings, mode: str, max_len: int):
    """The same through the server's continuous batching (:class:`ContinuousBatch`: prefill into rows,
    eager steps)."""
    params = SamplingParams(max_new_tokens=s.new_tokens)

    def prefilled(batch: Batch) -> ContinuousBatch:
        cb = ContinuousBatch(model, batch.input_ids.shape[0], max_len, 0, compile=mode == "continuous-fast")
        per = s.tiles
        cb.add_many([(i, batch.input_ids[i].tolist(), batch.pixel_values[i * per : (i + 1) * per], params)
                     for i in range(batch.input_ids.shape[0])])
        return cb

    def full(batch: Batch) -> None:
        cb = prefilled(batch)
        for _ in range(s.new_tokens - 1):
            cb.step()

    return prefilled, full


def run_mode(model, cfg, s: BenchSettings, mode: str, device) -> dict[str, float]:
    one = _workload(cfg, s, 1, device)
    pv = one.pixel_values.to(model.language_model.head.weight.dtype)
    with torch.no_grad():
        vision = _timed(lambda: model.extract_feature(pv), device, s.repeats)
    fns = _continuous_fns if mode.startswith("continuous") else _generate_fns
    first_token, full = fns(model, s, mode, one.input_ids.shape[1] + s.new_tokens + 1)
    ttft = _timed(lambda: first_token(one), device, s.repeats)
    t_long = _timed(lambda: full(one), device, s.repeats)
    decode = (s.new_tokens - 1) / max(t_long - ttft, 1e-9)
    many = _workload(cfg, s, s.batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_batch = _timed(lambda: full(many), device, max(1, s.repeats - 1))
    batch_ttft = _timed(lambda: first_token(many), device, 1)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    model.language_model.clear_caches()
    return {"vision_ms": 1e3 * vision, "ttft_ms": 1e3 * ttft, "decode_tok_s": decode,
            "batch_tok_s": s.batch * s.new_tokens / t_batch, "batch_ttft_ms": 1e3 * batch_ttft,
            "peak_mem_gib": peak}


def run_bench(s: BenchSettings) -> dict:
    device = resolve_device(s.device)
    if not isinstance(device, torch.device):
        raise ValueError("tessera bench runs on one device; a multi-device split is not supported here")
    dtype = resolve_dtype(s.dtype, device)
    cfg = ChatConfig.from_name(s.preset)
    if s.layers is not None:
        cfg.vision_config.num_hidden_layers = cfg.llm_config.num_hidden_layers = s.layers
    model = build_random_model(cfg, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    ceil = measure_ceilings(device, dtype)
    prompt = s.prompt_tokens or s.tiles * cfg.num_image_token + 40
    work = count_flops_bytes(cfg, s.tiles, prompt, s.new_tokens, s.batch, torch.finfo(dtype).bits // 8)
    floor = floors(work, ceil, s.new_tokens, s.batch)
    results, errors = {}, {}
    for mode in s.modes:
        try:
            results[mode] = run_mode(model, cfg, s, mode, device)
        except Exception as exc:  # one broken mode must not lose the others' figures
            errors[mode] = f"{type(exc).__name__}: {exc}"
            print(f"tessera bench: mode {mode} failed: {errors[mode]}", file=sys.stderr)
            model.language_model.clear_caches()
    lower_better = ("vision_ms", "ttft_ms", "batch_ttft_ms", "peak_mem_gib")
    ratios, fractions = {}, {}
    base = results.get("eager")
    for mode, r in results.items():
        if base:
            ratios[mode] = {k: (base[k] / r[k] if k in lower_better else r[k] / base[k]) for k in r if base[k] and r[k]}
        fractions[mode] = {k: (floor[k] / r[k] if k.endswith("_ms") else r[k] / floor[k]) for k in floor}
    return {
        "schema": SCHEMA_VERSION,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "preset": s.preset, "dtype": str(dtype).removeprefix("torch."),
        "settings": {"tiles": s.tiles, "prompt_tokens": prompt, "new_tokens": s.new_tokens, "batch": s.batch,
                     "layers": s.layers, "repeats": s.repeats},
        "params": params, "ceilings": ceil, "floors": floor, "work": work,
        "results": results, "ratios": ratios, "fractions": fractions, "errors": errors,
    }


def format_table(report: dict) -> str:
    rows = [("vision + projector (ms)", "vision_ms"), ("time to first token (ms)", "ttft_ms"),
            ("decode batch 1 (tok/s)", "decode_tok_s"),
            (f"batch {report['settings']['batch']} generated (tok/s)", "batch_tok_s"),
            ("batch time to first token (ms)", "batch_ttft_ms"), ("peak memory (GiB)", "peak_mem_gib")]
    modes = list(report["results"])
    head = f"| {'figure':<32} | " + " | ".join(f"{m:>10}" for m in modes) + " | floor | " + " | ".join(
        f"{m} vs eager / of floor" for m in modes if m != "eager") + " |"
    lines = [f"tessera bench: {report['preset']} on {report['device']} ({report['dtype']}), "
             f"{report['settings']['tiles']} tiles, prompt {report['settings']['prompt_tokens']} tokens, "
             f"{report['settings']['new_tokens']} new tokens; ceilings {report['ceilings']['matmul_tflops']:.1f} "
             f"TFLOP/s, {report['ceilings']['copy_gbps']:.0f} GB/s", head, "|" + "---|" * (head.count("|") - 1)]
    for label, key in rows:
        vals = " | ".join(f"{report['results'][m].get(key, float('nan')):>10.1f}" for m in modes)
        floor = report["floors"].get(key)
        extra = " | ".join(
            f"{report['ratios'].get(m, {}).get(key, float('nan')):.2f}x / "
            f"{report['fractions'][m].get(key, float('nan')):.0%}" for m in modes if m != "eager")
        lines.append(f"| {label:<32} | {vals} | {floor if floor is None else f'{floor:.1f}'} | {extra} |")
    return "\n".join(lines)


def register(sub) -> None:
    p = sub.add_parser("bench", help="time a model at real size with random weights (vision, TTFT, decode)")
    p.add_argument("--preset", default="mini-internvl-chat-2b-v1-5", choices=sorted(PRESETS))
    p.add_argument("--tiles", type=int, default=13)
    p.add_argument("--prompt-tokens", type=int, default=None)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--device", default="auto")
    p.add_argument("--modes", default="eager,fast",
                   help="comma list of eager (static batch, eager steps), fast (compiled steps), continuous "
                        "(the server's continuous batching), continuous-fast (the same, compiled steps: "
                        "tessera serve --compile)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--layers", type=int, default=None, help="override layer counts (quick runs)")
    p.add_argument("--json", default=None, help="also write the report as JSON to this path")
    p.set_defaults(func=run_cli)


MODES = ("eager", "fast", "continuous", "continuous-fast")


def run_cli(args: argparse.Namespace) -> int:
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        print(f"tessera bench: error: --modes takes a comma list of {', '.join(MODES)}; got {args.modes!r}",
              file=sys.stderr)
        return 2
    s = BenchSettings(args.preset, args.tiles, args.prompt_tokens, args.new_tokens, args.batch, args.dtype,
                      args.device, modes, args.repeats, args.layers)
    report = run_bench(s)
    if report["results"]:
        print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(run_cli(argparse.ArgumentParser().parse_args()))
