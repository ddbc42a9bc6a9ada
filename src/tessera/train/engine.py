"""The training loop: :func:`run_training` (Python) behind ``tessera train`` and ``python -m tessera.train``.

One optimizer step = ``gradient_accumulation_steps`` micro-batches on every rank. The loss of a step is the
mean cross-entropy over all labelled tokens of the global batch (all micro-batches, all ranks): each
micro-batch's summed loss is scaled by world / (labelled tokens of the step), so the gradient does not
depend on how the global batch is split between processes and accumulation. (The official HF Trainer
averages per-micro-batch means instead; both agree when micro-batches hold equal numbers of labelled
tokens.) Then gradient clipping, AdamW, the schedule, logging and checkpoints.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..preprocess import to_pixel_values
from ..templates import get_template
from . import distributed as D
from .batching import StepPlan, collate
from .checkpointing import export_weights, find_latest, full_state, load_checkpoint, save_checkpoint
from .config import RecipeError, TrainConfig
from .conversation import IGNORE_INDEX
from .data import REASONS, ImageSettings, Sample, TrainDataset, read_meta
from .feedback import Feedback, data_report, plot_loss
from .forward import TrainModule
from .model_setup import build_model, trainable_summary
from .optim import build_optimizer, build_scheduler

log = logging.getLogger("tessera.train")
_REASON_KEYS = list(REASONS)


class _RankBatches:
    """``batch_sampler`` for the DataLoader: this rank's micro-batches from a start step on."""

    def __init__(self, plan: StepPlan, rank: int, start: int, total: int):
        self.plan, self.rank, self.start, self.total = plan, rank, start, total

    def __iter__(self):
        return self.plan.iter_rank(self.rank, self.start, self.total)

    def __len__(self) -> int:
        return (self.total - self.start) * self.plan.accum


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)


def _dummy_sample(tokenizer, image_size: int) -> Sample:
    """A 2-token, label-free, text-only sample: the stand-in for a micro-batch whose samples were all
    skipped (or that the last partial global batch left empty), so every rank still steps in lockstep."""
    import numpy as np

    ids = tokenizer.encode("a")[:2] or [0]
    return Sample(ids, [IGNORE_INDEX] * len(ids), np.full((1, image_size, image_size, 3), 255, np.uint8), [0])


def build_dataset(cfg: TrainConfig, tokenizer, config) -> TrainDataset:
    if not cfg.data.meta_path:
        raise RecipeError("set data.meta_path (the meta JSON naming your JSONL files), e.g. data.meta_path=meta.json")
    images = ImageSettings(
        image_size=config.image_size, num_image_token=config.num_image_token,
        min_tiles=config.min_dynamic_patch, max_tiles=config.max_dynamic_patch,
        use_thumbnail=config.use_thumbnail, dynamic=config.dynamic_image_size,
    )
    return TrainDataset(
        read_meta(cfg.data.meta_path), tokenizer, get_template(config.template), images,
        system_message=config.system_message, max_seq_length=cfg.data.max_seq_length, seed=cfg.run.seed,
        video_frames=cfg.data.video_frames, max_images=cfg.data.max_images,
    )


def total_steps(cfg: TrainConfig, plan: StepPlan) -> int:
    if cfg.optim.max_steps > 0:
        return cfg.optim.max_steps
    return max(1, math.ceil(cfg.optim.num_train_epochs * plan.steps_per_epoch))


@dataclass
class TrainResult:
    """What :func:`train` leaves: the final checkpoint dir, the trained model (train mode, on its device;
    under FSDP its parameters are shards) and the tokenizer."""

    final_dir: Path
    model: torch.nn.Module
    tokenizer: object


def run_training(cfg: TrainConfig) -> Path:
    """Train as the recipe says; returns the directory of the final official-layout checkpoint
    (``output_dir/final``). Run under ``torchrun`` for data parallelism."""
    return train(cfg).final_dir


def train(cfg: TrainConfig) -> TrainResult:
    """:func:`run_training`, returning the model and tokenizer too."""
    env = D.setup(cfg.run)
    try:
        return _train(cfg, env)
    finally:
        D.cleanup(env)


def _train(cfg: TrainConfig, env: D.DistEnv) -> TrainResult:
    out_dir = Path(cfg.run.output_dir).expanduser()
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "recipe.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    resume_from = None
    if cfg.run.resume:
        resume_from = find_latest(out_dir) if cfg.run.resume is True else Path(cfg.run.resume)
        if cfg.run.resume is not True and not resume_from.is_dir():
            raise RecipeError(f"run.resume={cfg.run.resume!r}: no such checkpoint directory")
        if resume_from is None and env.is_main:
            print(f"run.resume: no complete checkpoint in {out_dir}; starting from step 0", flush=True)

    built = build_model(cfg, device="cpu" if env.strategy == "fsdp" else env.device)
    model, tokenizer = built.model, built.tokenizer
    torch.manual_seed(cfg.run.seed + env.rank)
    dataset = build_dataset(cfg, tokenizer, model.config)
    lengths = None
    if cfg.data.group_by_length:
        lengths = [dataset.estimated_length(i) for i in range(len(dataset))]
    plan = StepPlan(
        len(dataset), per_device=cfg.optim.per_device_batch_size, world=env.world,
        accum=cfg.optim.gradient_accumulation_steps, seed=cfg.run.seed, lengths=lengths,
    )
    total = total_steps(cfg, plan)

    train_module = TrainModule(model)
    wrapped = D.wrap(train_module, env)
    optimizer = build_optimizer(model, cfg.optim, fused=env.device.type == "cuda" and env.strategy != "fsdp")
    scheduler = build_scheduler(optimizer, cfg.optim, total)
    state = {"step": 0, "samples": 0, "tokens": 0, "skipped": {}, "skip_examples": {}}
    if resume_from is not None:
        saved = load_checkpoint(resume_from, env=env, train_module=train_module, optimizer=optimizer, scheduler=scheduler)
        if saved.get("global_batch") != plan.global_batch:
            log.warning("resuming with global batch %s (checkpoint: %s): the data order changes", plan.global_batch,
                        saved.get("global_batch"))
        state.update(saved)
    start = int(state["step"])
    counts: Counter = Counter(state["skipped"] if env.is_main else {})
    examples: dict[str, list[str]] = dict(state["skip_examples"]) if env.is_main else {}
    samples_seen = int(state["samples"]) if env.is_main else 0

    fb = Feedback(out_dir, total_steps=total, start_step=start, enabled=env.is_main, progress=cfg.run.progress,
                  tensorboard=cfg.run.tensorboard)
    params = trainable_summary(model)
    fb.message(
        f"tessera train: {len(dataset)} samples, {total} steps of {plan.global_batch} samples "
        f"({env.world} process(es) x {cfg.optim.per_device_batch_size} x {cfg.optim.gradient_accumulation_steps}), "
        f"{env.strategy}, {str(env.dtype).removeprefix('torch.')} on {env.device.type}; trainable params: "
        + ", ".join(f"{k} {params[k]:,}/{params[k + '_total']:,}" for k in ("vision_model", "mlp1", "language_model"))
        + (f"; resumed from {resume_from} at step {start}" if resume_from is not None else "")
    )

    loader = DataLoader(
        dataset,
        batch_sampler=_RankBatches(plan, env.rank, start, total),
        collate_fn=functools.partial(
            collate, dummy=_dummy_sample(tokenizer, model.config.image_size), packing=cfg.data.packing,
            max_seq_length=cfg.data.max_seq_length,
        ),
        num_workers=cfg.data.num_workers,
        worker_init_fn=_worker_init if cfg.data.num_workers else None,
        generator=torch.Generator().manual_seed(cfg.run.seed),
        pin_memory=env.device.type == "cuda",
    )
    save_dtype = getattr(torch, cfg.run.save_dtype, None)
    if not isinstance(save_dtype, torch.dtype):
        raise RecipeError(f"run.save_dtype {cfg.run.save_dtype!r} is not a torch dtype (bfloat16, float32, ...)")
    trainable = [p for p in model.parameters() if p.requires_grad]
    accum = cfg.optim.gradient_accumulation_steps

    def trainer_state(step: int) -> dict:
        vec = D.all_reduce_sum([counts[k] for k in _REASON_KEYS] + [samples_seen], env)
        return {
            "step": step, "samples": int(vec[-1]), "tokens": state["tokens"],
            "skipped": {k: int(v) for k, v in zip(_REASON_KEYS, vec[:-1]) if v},
            "skip_examples": examples, "global_batch": plan.global_batch, "world_size": env.world,
            "total_steps": total,
        }

    def save(step: int) -> Path:
        return save_checkpoint(
            out_dir, step, env=env, train_module=train_module, optimizer=optimizer, scheduler=scheduler,
            tokenizer=tokenizer, source_dir=built.source_dir, trainer_state=trainer_state(step),
            save_dtype=save_dtype, keep=cfg.run.save_total_limit,
        )

    batches = iter(loader)
    t_start = time.perf_counter()
    for step in range(start, total):
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(accum)]
        for b in micro:
            for s in b.skipped:
                counts[s.reason] += 1
                seen = examples.setdefault(s.reason, [])
                if len(seen) < 5 and not any(e.startswith(s.where + ":") for e in seen):
                    seen.append(f"{s.where}: {s.detail}"[:200])
        local = [sum(b.num_labels for b in micro), sum(b.num_tokens for b in micro), sum(b.num_samples for b in micro)]
        n_labels, n_tokens, n_samples = D.all_reduce_sum(local, env)
        samples_seen += local[2] + sum(len(b.skipped) for b in micro)
        scale = env.world / max(n_labels, 1.0)
        lr = scheduler.get_last_lr()[0]
        loss_sum = torch.zeros((), dtype=torch.float64)
        for j, b in enumerate(micro):
            b = b.to(env.device)
            pixels = to_pixel_values(b.tiles, dtype=torch.float32)
            with D.no_sync(wrapped, env, last=j == accum - 1):
                with D.autocast(env):
                    loss = wrapped(b.input_ids, b.labels, b.position_ids, pixels, b.image_flags, b.mask)
                (loss * scale).backward()
            loss_sum += loss.detach().double().cpu()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.max_grad_norm if cfg.optim.max_grad_norm > 0 else float("inf"))
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        grad_norm = float(grad_norm)
        if math.isfinite(grad_norm):
            optimizer.step()
        else:
            fb.message(f"step {step + 1}: non-finite gradient norm, update skipped")
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        total_loss = D.all_reduce_sum([float(loss_sum)], env)[0]
        state["tokens"] += int(n_tokens)
        dt = time.perf_counter() - t0
        record = {
            "step": step + 1, "epoch": round((step + 1) / plan.steps_per_epoch, 4),
            "loss": total_loss / max(n_labels, 1.0), "lr": lr, "grad_norm": grad_norm, "tokens": int(n_tokens),
            "label_tokens": int(n_labels), "samples": int(n_samples), "tokens_per_s": n_tokens / dt,
            "step_time_s": dt, "elapsed_s": time.perf_counter() - t_start,
        }
        fb.step(record, log_it=(step + 1) % max(1, cfg.run.logging_steps) == 0 or step + 1 == total)
        if cfg.run.save_steps > 0 and (step + 1) % cfg.run.save_steps == 0 and step + 1 < total:
            save(step + 1)

    if total > start or resume_from is None:
        save(total)
    final = out_dir / "final"
    state_full = full_state(train_module, env)
    if env.is_main:
        export_weights(final, model, state_full, tokenizer, source_dir=built.source_dir, dtype=save_dtype)
    D.barrier(env)
    final_state = trainer_state(total)
    fb.close()
    if env.is_main:
        report, text = data_report(final_state["skipped"], examples, final_state["samples"])
        (out_dir / "data_report.json").write_text(json.dumps(report, indent=2) + "\n")
        print(text, flush=True)
        if cfg.run.plot:
            plot_loss(out_dir / "metrics.jsonl", out_dir / "loss.png")
        print(f"final checkpoint: {final}", flush=True)
    return TrainResult(final, model, tokenizer)
