"""Summary of every scored run in an output directory: Markdown + JSON table and a score-vs-max_tiles plot."""

from __future__ import annotations

import json
from pathlib import Path

from tessera.eval import store
from tessera.eval.paper import paper_number


def collect(out_dir: Path) -> list[dict]:
    """One row per ``<bench>/tiles-<N>/scores.json`` under ``out_dir``, with the paper number when known."""
    rows = []
    for path in sorted(Path(out_dir).glob(f"*/tiles-*/{store.SCORES}")):
        result = json.loads(path.read_text(encoding="utf-8"))
        paper = paper_number(result.get("model", ""), result["benchmark"])
        rows.append({
            "benchmark": result["benchmark"], "max_tiles": result["max_tiles"], "model": result.get("model"),
            "n": result.get("n"), "score": result.get("score"), "unit": result.get("unit", "%"),
            "paper": paper[0] if paper else None, "paper_max_tiles": paper[1] if paper else None,
            "paper_note": paper[2] if paper else "", "note": result.get("note", ""),
        })
    rows.sort(key=lambda r: (r["benchmark"], r["max_tiles"]))
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(rows: list[dict]) -> str:
    lines = ["| benchmark | max_tiles | n | score | paper (tiles) | delta | notes |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        paper = "-" if r["paper"] is None else f"{r['paper']:.2f} ({r['paper_max_tiles']})"
        delta = "-" if r["paper"] is None or r["score"] is None else f"{r['score'] - r['paper']:+.2f}"
        notes = "; ".join(x for x in (r["note"], r["paper_note"]) if x)
        lines.append(f"| {r['benchmark']} | {r['max_tiles']} | {r['n']} | {_fmt(r['score'])} {r['unit']} | "
                     f"{paper} | {delta} | {notes} |")
    models = sorted({str(r["model"]) for r in rows})
    return "\n".join([f"Model: {', '.join(models)}", "", *lines, ""])


def plot_sweep(rows: list[dict], path: Path) -> Path | None:
    """Score against max_tiles, one panel per benchmark that was run at several tile settings."""
    sweeps: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if r["score"] is not None:
            sweeps.setdefault(r["benchmark"], []).append((r["max_tiles"], r["score"]))
    sweeps = {k: sorted(v) for k, v in sweeps.items() if len(v) > 1}
    if not sweeps:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(sweeps)
    cols = min(n, 3)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), squeeze=False)
    for ax, (name, points) in zip(axes.flat, sorted(sweeps.items())):
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_title(name)
        ax.set_xlabel("max_tiles")
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(out_dir: Path) -> dict:
    """Write ``summary.md``, ``summary.json`` and (for sweeps) ``tiles_sweep.png``; returns paths and rows."""
    out_dir = Path(out_dir)
    rows = collect(out_dir)
    text = markdown(rows)
    (out_dir / "summary.md").write_text(text, encoding="utf-8")
    store.write_json_atomic(out_dir / "summary.json", {"rows": rows})
    plot = plot_sweep(rows, out_dir / "tiles_sweep.png")
    return {"rows": rows, "markdown": text, "plot": str(plot) if plot else None}
