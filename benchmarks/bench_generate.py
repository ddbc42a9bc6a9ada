"""Cost per generated token against the length generated: static KV cache vs re-forwarding the sequence.

Both paths run in the same process on the same random-weight model (a narrow InternLM2 chat model by
default) and produce the same greedy tokens; the table shows milliseconds per new token after generating
N tokens. With the cache the cost stays flat; the no-cache baseline re-runs the whole prompt and every
generated token at each step, so its cost grows with N.

Usage: python benchmarks/bench_generate.py [--preset tiny-internlm2] [--lengths 32,64,128,256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tessera.bench import build_random_model
from tessera.config import ChatConfig
from tessera.generation import Batch, SamplingParams, generate


@torch.no_grad()
def no_cache_generate(model, ids: torch.Tensor, pixels: torch.Tensor, n: int) -> list[int]:
    """The straightforward baseline: a full forward over prompt + generated tokens for every new token."""
    out = []
    for _ in range(n):
        logits = model(ids, pixels)[:, -1]
        token = logits.argmax(-1)
        out.append(int(token))
        ids = torch.cat([ids, token.view(1, 1)], dim=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny-internlm2")
    ap.add_argument("--hidden", type=int, default=256, help="LLM width (the tiny preset is widened to this)")
    ap.add_argument("--lengths", default="32,64,128,256")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = ChatConfig.from_name(args.preset)
    cfg.llm_config.hidden_size = args.hidden
    cfg.llm_config.intermediate_size = 3 * args.hidden
    model = build_random_model(cfg, torch.device("cpu"), torch.float32)
    tiles = 3
    prompt = [1] + [model.img_context_token_id] * (tiles * cfg.num_image_token) + list(range(10, 60))
    ids = torch.tensor([prompt])
    pixels = torch.randn(tiles, 3, cfg.image_size, cfg.image_size)
    print(f"{args.preset} (LLM hidden {args.hidden}), prompt {len(prompt)} tokens, CPU float32, "
          f"{torch.get_num_threads()} threads; ms per generated token (median of {args.repeats})")
    print("| new tokens | static KV cache | no-cache re-forward | ratio |\n|---|---|---|---|")
    for n in (int(x) for x in args.lengths.split(",")):
        params = [SamplingParams(max_new_tokens=n)]
        cached, base = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            toks = [int(t) for t in generate(model, Batch.from_ids([prompt], 0, pixels), params, 0)]
            cached.append((time.perf_counter() - start) / n)
            start = time.perf_counter()
            ref = no_cache_generate(model, ids, pixels, n)
            base.append((time.perf_counter() - start) / n)
            assert toks == ref, "cached and no-cache greedy tokens differ"
        c, b = statistics.median(cached) * 1e3, statistics.median(base) * 1e3
        print(f"| {n} | {c:.2f} | {b:.2f} | {b / c:.1f}x |")


if __name__ == "__main__":
    main()
