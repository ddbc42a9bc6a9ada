"""What a run shows and leaves behind (rank 0 only): a tqdm bar with loss, learning rate, tokens/s and
ETA; ``metrics.jsonl`` (one JSON object per logged step); TensorBoard scalars when the ``tensorboard``
package is installed and asked for; ``loss.png`` at the end (matplotlib, Agg backend); and
``data_report.json`` with the skipped samples by reason.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .data import REASONS

log = logging.getLogger("tessera.train")


class Feedback:
    def __init__(
        self,
        output_dir: Path,
        *,
        total_steps: int,
        start_step: int,
        enabled: bool,
        progress: bool = True,
        tensorboard: bool = False,
    ):
        self.output_dir = output_dir
        self.enabled = enabled
        self.metrics_path = output_dir / "metrics.jsonl"
        self.bar = None
        self.tb = None
        if not enabled:
            return
        output_dir.mkdir(parents=True, exist_ok=True)
        self._truncate(start_step)
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(output_dir / "tensorboard"))
            except ImportError:
                log.warning("run.tensorboard is set but tensorboard is not installed (pip install tensorboard)")

    def _truncate(self, start_step: int) -> None:
        """Keep the lines of steps <= start_step (a resumed run rewrites what came after its checkpoint)."""
        if not self.metrics_path.exists():
            return
        keep = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= start_step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue
        self.metrics_path.write_text("".join(k + "\n" for k in keep))

    def step(self, record: dict[str, Any], log_it: bool) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", tok_s=f"{record['tokens_per_s']:.0f}",
                refresh=False,
            )
        if log_it:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if self.tb is not None:
                for key in ("loss", "lr", "grad_norm", "tokens_per_s"):
                    self.tb.add_scalar(f"train/{key}", record[key], record["step"])

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_loss(metrics_path: Path, out_png: Path) -> Path | None:
    """Loss against step as a PNG; None when there is nothing to plot or matplotlib is missing."""
    if not metrics_path.exists():
        return None
    rows = read_metrics(metrics_path)
    if not rows:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no loss plot (pip install matplotlib)")
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log" if min(r["loss"] for r in rows) > 0 else "linear")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


def data_report(counts: dict[str, int], examples: dict[str, list[str]], total: int) -> tuple[dict, str]:
    """The skipped-sample report as a dict (for data_report.json) and as text lines."""
    skipped = sum(counts.values())
    report = {"samples_seen": total, "skipped": skipped, "by_reason": {}}
    lines = [f"data: {total} samples drawn, {skipped} skipped"]
    for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        if n:
            report["by_reason"][reason] = {"count": n, "meaning": REASONS.get(reason, reason),
                                           "examples": examples.get(reason, [])}
            lines.append(f"  {reason}: {n} ({REASONS.get(reason, reason)}), e.g. {'; '.join(examples.get(reason, [])[:2])}")
    return report, "\n".join(lines)
