"""Plot a ``tessera bench`` run on a GPU beside the official code's anchors (performance.md) and the floors.

    python benchmarks/plot_gpu.py benchmarks/results/h200-2026-11-27 docs/gpu-h200.png

Reads ``bench_2b.json`` and ``bench_26b.json`` from the results folder; one panel per figure (decode at batch
1, batch throughput, time to first token), bars per model: official, tessera eager, tessera fast, floor.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# performance.md: the official remote code on one H200 (2B decode: the better of its two runs)
OFFICIAL = {
    "mini-internvl-chat-2b-v1-5": {"decode_tok_s": 61, "batch_tok_s": 319, "ttft_ms": 166},
    "internvl-chat-v1-5": {"decode_tok_s": 21.7, "batch_tok_s": 54, "ttft_ms": 1112},
}
PANELS = [("decode_tok_s", "decode, batch 1 (tokens/s, higher is better)"),
          ("batch_tok_s", "batch of {b2} (2B) / {b26} (26B) requests, generated tokens/s (higher is better)"),
          ("ttft_ms", "time to first token, 13 tiles (ms, lower is better)")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    reports = [json.loads((args.results / f"bench_{n}.json").read_text()) for n in ("2b", "26b")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    colours = {"official": "#999999", "eager": "#9ecae1", "fast": "#2171b5", "floor": "#ffffff"}
    for ax, (key, title) in zip(axes, PANELS):
        for i, rep in enumerate(reports):
            values = {"official": OFFICIAL[rep["preset"]][key], "eager": rep["results"]["eager"][key],
                      "fast": rep["results"]["fast"][key], "floor": rep["floors"][key]}
            for j, (name, value) in enumerate(values.items()):
                x = i * 5 + j
                ax.bar(x, value, color=colours[name], edgecolor="black", hatch="//" if name == "floor" else None,
                       label=name if i == 0 else None)
                ax.text(x, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks([1.5, 6.5], ["Mini-InternVL-Chat-2B", "InternVL-Chat-V1-5 (26B)"])
        ax.set_yscale("log")
        ax.set_title(title.format(b2=reports[0]["settings"]["batch"], b26=reports[1]["settings"]["batch"]),
                     fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"tessera bench on one {reports[0]['device']} (bf16, random weights, 128 new tokens); "
                 "official = performance.md's anchor on the same kind of card", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
