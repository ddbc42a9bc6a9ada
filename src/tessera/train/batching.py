"""Which samples go into which micro-batch (:class:`StepPlan`) and how a micro-batch becomes tensors
(:func:`collate`).

Plan: every epoch is a seeded permutation of the dataset; global step k takes the next
``global_batch = per_device x world x accumulation`` samples and splits them into ``world x accumulation``
micro-batches; rank r gets micro-batches ``r*accum .. r*accum + accum - 1``. The plan depends only on
(seed, epoch, step), so a resumed run starts at any step without replaying data, and one process with
accumulation sees exactly the same global batches as several processes. With ``group_by_length`` the
global batch is sorted by length (longest first) and dealt greedily to the micro-batch with the smallest
total length that still has room (LLaVA's split into even chunks).

Collate: tiles of all samples are concatenated into one vision batch with ``image_flags``; ids are right
padded with 0 and labels with -100 to the longest row (right padding needs no attention mask: real tokens
never attend to later padding). With packing, the samples of a micro-batch are packed first-fit into rows
of at most ``max_seq_length`` tokens, positions restart at 0 for each sample and a block-diagonal causal
mask [b, 1, s, s] keeps attention inside each sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .conversation import IGNORE_INDEX
from .data import Sample, Skipped


class StepPlan:
    """Deterministic assignment of samples to (step, rank, micro-batch)."""

    def __init__(
        self,
        num_samples: int,
        *,
        per_device: int,
        world: int,
        accum: int,
        seed: int,
        lengths: Sequence[int] | None = None,
    ):
        if num_samples <= 0:
            raise ValueError("the dataset is empty: no training samples after repeat_time")
        self.n, self.per_device, self.world, self.accum, self.seed = num_samples, per_device, world, accum, seed
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        self.global_batch = per_device * world * accum
        self.steps_per_epoch = math.ceil(num_samples / self.global_batch)

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 7919, epoch]).permutation(self.n)

    def micro_batches(self, step: int, order: np.ndarray | None = None) -> list[list[int]]:
        """All ``world x accum`` micro-batches (sample indices) of global step ``step`` (0-based)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        order = self.order(epoch) if order is None else order
        batch = order[k * self.global_batch:(k + 1) * self.global_batch]
        chunks = self.world * self.accum
        if self.lengths is None:
            return [batch[c * self.per_device:(c + 1) * self.per_device].tolist() for c in range(chunks)]
        lengths = self.lengths[batch]
        out: list[list[int]] = [[] for _ in range(chunks)]
        totals = [0] * chunks
        for i in np.argsort(-lengths, kind="stable"):
            c = min((c for c in range(chunks) if len(out[c]) < self.per_device), key=lambda c: totals[c])
            out[c].append(int(batch[i]))
            totals[c] += int(lengths[i])
        return out

    def iter_rank(self, rank: int, start_step: int, total_steps: int) -> Iterator[list[tuple[int, int]]]:
        """Micro-batches of ``rank`` from ``start_step`` on, as lists of dataset keys (epoch, index)."""
        cached_epoch, order = -1, None
        for step in range(start_step, total_steps):
            epoch = step // self.steps_per_epoch
            if epoch != cached_epoch:
                cached_epoch, order = epoch, self.order(epoch)
            micro = self.micro_batches(step, order)
            for j in range(self.accum):
                yield [(epoch, i) for i in micro[rank * self.accum + j]]


@dataclass
class Batch:
    """One micro-batch. Shapes: b rows, s tokens, T tiles of S x S pixels."""

    input_ids: torch.Tensor  # [b, s] int64, padded with 0
    labels: torch.Tensor  # [b, s] int64, -100 = no loss
    position_ids: torch.Tensor  # [b, s] int64
    tiles: torch.Tensor  # [T, S, S, 3] uint8 (normalised on the device)
    image_flags: torch.Tensor  # [T] int64, 0 = dummy tile of a text-only sample
    mask: torch.Tensor | None  # [b, 1, s, s] bool (packing only), True = may attend
    num_samples: int
    num_tokens: int  # real (non-padding) tokens
    num_labels: int  # tokens with a loss (after the shift)
    skipped: list[Skipped] = field(default_factory=list)

    def to(self, device: torch.device) -> Batch:
        def move(t):
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            move(self.input_ids), move(self.labels), move(self.position_ids), move(self.tiles),
            move(self.image_flags), move(self.mask), self.num_samples, self.num_tokens, self.num_labels,
            self.skipped,
        )


def _pack(samples: list[Sample], capacity: int) -> list[list[Sample]]:
    """First-fit decreasing: rows of at most ``capacity`` tokens (a longer sample gets its own row)."""
    rows: list[list[Sample]] = []
    used: list[int] = []
    for s in sorted(samples, key=lambda s: -len(s.input_ids)):
        n = len(s.input_ids)
        for r in range(len(rows)):
            if used[r] + n <= capacity:
                rows[r].append(s)
                used[r] += n
                break
        else:
            rows.append([s])
            used.append(n)
    return rows


def collate(
    items: list[Sample | Skipped], *, dummy: Sample, packing: bool = False, max_seq_length: int = 4096
) -> Batch:
    """Samples -> :class:`Batch`. Skipped items are carried along for counting; if nothing is left the
    batch is ``dummy`` (no labels) so that every rank still runs a forward/backward in lockstep."""
    skipped = [x for x in items if isinstance(x, Skipped)]
    samples = [x for x in items if isinstance(x, Sample)]
    num_samples = len(samples)
    if not samples:
        samples = [dummy]
    rows = _pack(samples, max_seq_length) if packing else [[s] for s in samples]
    width = max(sum(len(s.input_ids) for s in row) for row in rows)
    b = len(rows)
    input_ids = torch.zeros(b, width, dtype=torch.long)
    labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros(b, width, dtype=torch.long)
    segment = torch.full((b, width), -1, dtype=torch.long)
    tiles, flags = [], []
    for r, row in enumerate(rows):
        pos = 0
        for k, s in enumerate(row):
            n = len(s.input_ids)
            input_ids[r, pos:pos + n] = torch.tensor(s.input_ids)
            labels[r, pos:pos + n] = torch.tensor(s.labels)
            position_ids[r, pos:pos + n] = torch.arange(n)
            segment[r, pos:pos + n] = k
            pos += n
            tiles.append(s.tiles)
            flags += s.image_flags
    mask = None
    if packing and any(len(row) > 1 for row in rows):
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, None, :] >= 0)
        mask = (same & causal)[:, None] | torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves
    real = segment >= 0
    return Batch(
        input_ids=input_ids,
        labels=labels,
        position_ids=position_ids,
        tiles=torch.from_numpy(np.concatenate(tiles)),
        image_flags=torch.tensor(flags, dtype=torch.long),
        mask=mask,
        num_samples=num_samples,
        num_tokens=int(real.sum()) if num_samples else 0,
        num_labels=int((labels[:, 1:] != IGNORE_INDEX).sum()),
        skipped=skipped,
    )
