"""Generation as small functions over the model and a static KV cache.

1. :func:`prefill` runs the vision encoder once, scatters its features into the prompt embeddings, fills the
   KV cache for all prompt slots and returns logits for the last position only.
2. :func:`decode_step` feeds one token per row and returns its logits.
3. :func:`sample` turns logits into tokens (greedy, temperature, top-k, top-p, repetition penalty, per-row
   seeds).
4. :func:`generate` strings them together as a Python generator that yields one token per row per step.

Batches are left padded: every row writes the same cache slots, and a boolean ``valid`` [b, K] marks the
slots each row may attend to. RoPE positions are per row: ``cumsum(mask) - 1`` over the prompt (padding
at 1, as the official batched ``generate``), then +1 per new token.

Shape legend: b = batch, s = prompt length, K = cache length (prompt + max new tokens), v = vocab.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .models.internvl import InternVLChatModel, left_padding_inputs


@dataclass
class SamplingParams:
    """Per-request decoding settings. ``temperature == 0`` is greedy."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = ()

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")


@dataclass
class Sampler:
    """Vectorised sampling state for a batch: per-row settings, generators and seen-token masks."""

    params: Sequence[SamplingParams]
    vocab: int
    device: torch.device
    generators: list[torch.Generator | None] = field(init=False)

    def __post_init__(self):
        dev = self.device
        self.temperature = torch.tensor([p.temperature for p in self.params], device=dev)
        self.top_p = torch.tensor([p.top_p for p in self.params], device=dev)
        self.top_k = torch.tensor([p.top_k for p in self.params], device=dev)
        self.penalty = torch.tensor([p.repetition_penalty for p in self.params], device=dev)
        self.greedy = all(p.temperature == 0 for p in self.params)
        self.use_penalty = any(p.repetition_penalty != 1.0 for p in self.params)
        self.seen = torch.zeros(len(self.params), self.vocab, dtype=torch.bool, device=dev) if self.use_penalty else None
        self.generators = []
        for p in self.params:
            if p.temperature == 0:
                self.generators.append(None)
                continue
            g = torch.Generator(device=dev)
            g.manual_seed(p.seed if p.seed is not None else int(torch.randint(0, 2**62, ()).item()))
            self.generators.append(g)

    def observe(self, tokens: torch.Tensor) -> None:
        """Record generated tokens [b] for the repetition penalty."""
        if self.seen is not None:
            self.seen.scatter_(1, tokens.view(-1, 1), True)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """[b, v] float32 logits -> next tokens [b]."""
        if self.seen is not None:
            pen = self.penalty.view(-1, 1)
            scaled = torch.where(logits > 0, logits / pen, logits * pen)
            logits = torch.where(self.seen, scaled, logits)
        greedy_tokens = logits.argmax(-1)
        if self.greedy:
            return greedy_tokens
        probs = filtered_probs(logits, self.temperature, self.top_k, self.top_p)
        out = greedy_tokens.clone()
        for row, gen in enumerate(self.generators):
            if gen is None:
                continue
            # exponential race: argmax(p / E) with E ~ Exp(1) draws from p, using this row's generator only
            noise = torch.empty_like(probs[row]).exponential_(generator=gen)
            out[row] = (probs[row] / noise).argmax()
        return out


def filtered_probs(
    logits: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor
) -> torch.Tensor:
    """Softmax of temperature-scaled logits [b, v] after per-row top-k (0 = off) and top-p filtering."""
    logits = logits / temperature.clamp_min(1e-5).view(-1, 1)
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    ranks = torch.arange(logits.shape[-1], device=logits.device).view(1, -1)
    k = torch.where(top_k > 0, top_k, logits.shape[-1]).view(-1, 1)
    drop = ranks >= k
    probs = sorted_logits.masked_fill(drop, float("-inf")).softmax(-1)
    drop |= (probs.cumsum(-1) - probs) > top_p.view(-1, 1)  # keep the smallest set reaching top_p
    drop[:, 0] = False
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    filtered = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return filtered.softmax(-1)


@dataclass
class Batch:
    """A left-padded batch of prompts. ``pixel_values`` holds all tiles of all rows, in row order."""

    input_ids: torch.Tensor  # [b, s]
    attention_mask: torch.Tensor  # [b, s] 1 = token, 0 = left padding
    pixel_values: torch.Tensor | None = None  # [t, 3, S, S]

    @classmethod
    def from_ids(
        cls, ids: Sequence[Sequence[int]], pad_id: int, pixel_values=None, device="cpu"
    ) -> Batch:
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, seq in enumerate(ids):
            if len(seq):
                input_ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                mask[row, width - len(seq):] = 1
        return cls(input_ids.to(device), mask.to(device), pixel_values)


@dataclass
class DecodeState:
    """What the decode loop carries between steps (all tensors stay on the model's device)."""

    valid: torch.Tensor  # [b, K] bool: cache slots each row may attend to
    positions: torch.Tensor  # [b] RoPE position of the next token
    slot: int  # next cache slot (same for all rows)
    cache_pos: torch.Tensor  # [1] the same slot on the device (made there, so no step waits on a copy)


@torch.no_grad()
def prefill(model: InternVLChatModel, batch: Batch, max_len: int) -> tuple[torch.Tensor, DecodeState]:
    """Encode images, fill the cache with the prompt, return last-position logits [b, v] and the state."""
    lm = model.language_model
    ids, mask = batch.input_ids, batch.attention_mask
    b, s = ids.shape
    dev = ids.device
    pixel_values = batch.pixel_values
    if pixel_values is not None:
        pixel_values = pixel_values.to(dev, lm.head.weight.dtype)
    embeds = model.embed(ids, pixel_values)
    positions, attn_mask = left_padding_inputs(mask)
    lm.setup_caches(b, max_len)
    cache_pos = torch.arange(s, device=dev)
    hidden = lm(embeds, positions, cache_pos=cache_pos, mask=attn_mask, kv_len=s, prefill=True)
    logits = lm.logits(hidden[:, -1])
    valid = torch.zeros(b, max_len, dtype=torch.bool, device=dev)
    valid[:, :s] = mask.bool()
    cache_pos = torch.full((1,), s, dtype=torch.long, device=dev)
    return logits, DecodeState(valid=valid, positions=positions[:, -1] + 1, slot=s, cache_pos=cache_pos)


def _step(lm, tokens: torch.Tensor, positions: torch.Tensor, cache_pos: torch.Tensor, mask: torch.Tensor,
          rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """One decode step with static shapes (the part that is compiled / captured as a CUDA graph): one token
    per row (``tokens``, ``positions`` [b] or [b, 1]) written at ``cache_pos``; returns logits [b, v].
    ``rope``: cos/sin tables made by the caller (else plain RoPE for ``positions``)."""
    embeds = lm.embed_tokens(tokens.view(-1, 1))
    hidden = lm(embeds, positions.view(-1, 1), cache_pos=cache_pos, mask=mask, kv_len=0, rope=rope)
    return lm.logits(hidden[:, -1])


def _row_step(lm, tokens: torch.Tensor, slots: torch.Tensor, mask: torch.Tensor, rope) -> torch.Tensor:
    """One continuous-batching step: :func:`_step` with each row at its own cache slot [b, 1] (also its RoPE
    position) and per-row cos/sin ``rope``. A function of its own so that its compiled graphs (one per mask
    width) are cached apart from :func:`_step`'s."""
    return _step(lm, tokens, slots, slots, mask, rope)


_COMPILED: dict[tuple[str, int], object] = {}


def _compiled(fn, lm):
    """``torch.compile(fn, mode="reduce-overhead")`` (CUDA graphs on GPU), one per function and model. If the
    compilation fails (no C++ compiler for inductor on this machine, an op it cannot handle) the call warns
    once and runs eagerly from then on: compiling is an optimisation, never a reason for a chat to fail."""
    key = (fn.__name__, id(lm))
    if key not in _COMPILED:
        compiled = torch.compile(fn, mode="reduce-overhead", dynamic=False)

        def call(*args):
            try:
                return compiled(*args)
            except Exception as exc:  # any compiler failure falls back to the same eager code
                warnings.warn(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); decoding eagerly",
                              RuntimeWarning, stacklevel=3)
                _COMPILED[key] = fn
                return fn(*args)

        _COMPILED[key] = call
    return _COMPILED[key]


def compiled_step(lm):
    """:func:`_step` compiled for ``lm`` (see :func:`_compiled`)."""
    return _compiled(_step, lm)


def compiled_row_step(lm):
    """:func:`_row_step` compiled for ``lm`` (see :func:`_compiled`)."""
    return _compiled(_row_step, lm)


@torch.no_grad()
def decode_step(
    model: InternVLChatModel, tokens: torch.Tensor, state: DecodeState, compile: bool = False
) -> torch.Tensor:
    """Feed tokens [b] at the next slot; returns logits [b, v] and advances ``state``."""
    lm = model.language_model
    state.valid[:, state.slot] = True
    cache_pos = state.cache_pos  # a host-made tensor here would sync the device at every token
    mask = state.valid[:, None, None, :]
    total = state.slot + 1
    if lm.rotary.kind == "dynamic" and total > lm.config.max_position_embeddings:
        # past the native context InternLM2's NTK base depends on the length: eager path
        embeds = lm.embed_tokens(tokens.view(-1, 1))
        hidden = lm(embeds, state.positions.view(-1, 1), cache_pos=cache_pos, mask=mask, kv_len=total)
        logits = lm.logits(hidden[:, -1])
    else:
        step = compiled_step(lm) if compile else _step
        logits = step(lm, tokens, state.positions, cache_pos, mask)
    state.positions = state.positions + 1
    state.cache_pos = state.cache_pos + 1
    state.slot += 1
    return logits


@torch.no_grad()
def generate(
    model: InternVLChatModel,
    batch: Batch,
    params: Sequence[SamplingParams],
    pad_id: int,
    *,
    compile: bool = False,
    check_every: int = 1,
    cache_len: int | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row [b] per step; finished rows yield ``pad_id``.

    A row finishes on one of its ``stop_token_ids`` (the stop token itself is yielded) or after its
    ``max_new_tokens``. The loop ends when every row has finished. The caller may stop early by closing
    the generator (``break``). ``compile`` runs the decode step through ``torch.compile`` (CUDA graphs on
    GPU); ``check_every`` > 1 checks for finished rows only every that many steps, so the loop does not
    wait for the device at each token (rows that finished keep yielding ``pad_id``). ``cache_len`` fixes the
    KV cache length (default prompt + max_new_tokens): with ``compile``, one length for every call means one
    compiled graph per batch size, however long each prompt is.

    Each step's decode is queued before its tokens are yielded, so a caller that reads them (``.tolist()``)
    waits for the sampling only while the device already runs the next step.
    """
    b = batch.input_ids.shape[0]
    if len(params) != b:
        raise ValueError(f"{len(params)} sampling params for a batch of {b}")
    max_new = max(p.max_new_tokens for p in params)
    dev = batch.input_ids.device
    max_len = batch.input_ids.shape[1] + max_new
    if cache_len is not None:
        if cache_len < max_len:
            raise ValueError(f"cache_len={cache_len} cannot hold the prompt ({batch.input_ids.shape[1]} tokens) "
                             f"and {max_new} new tokens")
        max_len = cache_len
    limits = torch.tensor([p.max_new_tokens for p in params], device=dev)
    stop_ids = sorted({t for p in params for t in p.stop_token_ids})
    stop_table = torch.tensor(stop_ids or [-1], device=dev)
    lm = model.language_model
    sampler = Sampler(params, lm.config.vocab_size, dev)
    finished = torch.zeros(b, dtype=torch.bool, device=dev)
    try:
        logits, state = prefill(model, batch, max_len)
        for step in range(max_new):
            tokens = sampler(logits)
            tokens = torch.where(finished, torch.full_like(tokens, pad_id), tokens)
            sampler.observe(tokens)
            finished |= torch.isin(tokens, stop_table) | (step + 1 >= limits)
            last = step + 1 == max_new
            if not last:
                logits = decode_step(model, tokens, state, compile)  # queued before the caller reads tokens
            yield tokens
            if last or ((step + 1) % check_every == 0 and bool(finished.all())):
                break
    finally:
        if not compile:
            lm.clear_caches()  # compiled steps keep the cache buffers (static addresses for CUDA graphs)


class ContinuousBatch:
    """Continuous batching: requests join and leave a running batch between decode steps.

    One static cache of ``rows`` x ``max_len`` slots. :meth:`add_many` prefills prompts into free rows (each at
    positions 0 .. s-1, as for a batch of one) and samples their first tokens;
    :meth:`step` feeds every active row's last token at that row's own next slot and position and samples
    the next ones; :meth:`remove` frees a row. Each row keeps its own :class:`Sampler` (seed, penalty
    history), so a request's tokens do not depend on which other requests share the batch, beyond
    floating-point reduction order.

    ``max_len`` bounds prompt + new tokens of every request. RoPE variants that depend on the length
    (InternLM2's dynamic NTK, Phi-3's LongRoPE) follow each row's own length, as for a batch of one.
    """

    def __init__(self, model: InternVLChatModel, rows: int, max_len: int, pad_id: int, compile: bool = False):
        lm = model.language_model
        self.model, self.rows, self.max_len, self.pad_id = model, rows, max_len, pad_id
        self.compile = compile
        # the batch owns its caches and installs them around each call: other generations on the same model
        # (chat() from another thread, between two steps) set up and clear their own
        self.caches = lm.new_caches(rows, max_len)
        self.valid = torch.zeros(rows, max_len, dtype=torch.bool, device=lm.head.weight.device)
        self.valid[:, 0] = True  # slots each row may attend to; an idle row keeps one, so no row is empty
        self.lengths = [0] * rows  # tokens in each row's cache = its next slot and RoPE position
        self.tokens = [pad_id] * rows  # last sampled token per row
        self.samplers: list[Sampler | None] = [None] * rows

    @property
    def free_rows(self) -> list[int]:
        return [r for r, s in enumerate(self.samplers) if s is None]

    @property
    def active_rows(self) -> list[int]:
        return [r for r, s in enumerate(self.samplers) if s is not None]

    @torch.no_grad()
    def add(self, row: int, input_ids: Sequence[int], pixel_values: torch.Tensor | None,
            params: SamplingParams) -> int:
        """Prefill a prompt into free ``row`` and return its first token."""
        return self.add_many([(row, input_ids, pixel_values, params)])[0]

    @torch.no_grad()
    def add_many(self, entries: Sequence[tuple[int, Sequence[int], torch.Tensor | None, SamplingParams]]) -> list[int]:
        """Prefill several prompts ``(row, input_ids, pixel_values, params)`` in one forward and return their
        first tokens. The prompts are right padded: under the causal mask a real token never sees the padding
        after it, positions stay 0 .. s-1, and the padding's cache slots are overwritten before they are ever
        attended to (each row's mask covers its own prompt only)."""
        lm = self.model.language_model
        dev = self.valid.device
        for row, ids, _, params in entries:
            if self.samplers[row] is not None:
                raise ValueError(f"row {row} is busy")
            if len(ids) == 0 or len(ids) + params.max_new_tokens > self.max_len:
                raise ValueError(f"prompt ({len(ids)} tokens) + max_new_tokens ({params.max_new_tokens}) must fit "
                                 f"in max_len={self.max_len}")
        width = max(len(ids) for _, ids, _, _ in entries)
        ids = torch.full((len(entries), width), self.pad_id, dtype=torch.long)
        for i, (_, seq, _, _) in enumerate(entries):
            ids[i, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        tiles = [pv for _, _, pv, _ in entries if pv is not None]
        pixel_values = torch.cat(tiles).to(dev, lm.head.weight.dtype) if tiles else None
        embeds = self.model.embed(ids.to(dev), pixel_values)
        temp = lm.new_caches(len(entries), width)
        slots = torch.arange(width, device=dev)
        with _caches_installed(lm, temp):
            hidden = lm(embeds, slots.expand(len(entries), -1), cache_pos=slots, kv_len=width, prefill=True)
        rows = torch.tensor([row for row, _, _, _ in entries], device=dev)
        for big, small in zip(self.caches, temp):
            big.k[rows, :, :width] = small.k.to(big.k.device)
            big.v[rows, :, :width] = small.v.to(big.v.device)
        last = torch.tensor([len(seq) - 1 for _, seq, _, _ in entries], device=hidden.device)
        logits = lm.logits(hidden[torch.arange(len(entries), device=hidden.device), last])
        for i, (row, seq, _, params) in enumerate(entries):
            sampler = Sampler([params], lm.config.vocab_size, dev)
            token = sampler(logits[i : i + 1])
            sampler.observe(token)
            self.valid[row] = False
            self.valid[row, : len(seq)] = True
            self.lengths[row] = len(seq)
            self.tokens[row] = int(token[0])
            self.samplers[row] = sampler
        return [self.tokens[row] for row, _, _, _ in entries]

    @torch.no_grad()
    def step(self) -> dict[int, int]:
        """Feed every active row's last token; returns ``{row: next token}`` for the active rows. A row
        whose cache is full gets no token (the caller should have removed it: ``add`` checks the budget).

        Attention runs over the slots in use only (up to the longest row, rounded up to 64), not the whole
        cache. With ``compile`` the model call is :func:`compiled_row_step` and the window is rounded up to a
        power of two (at least 512), so a few graphs serve every length."""
        active = [r for r in self.active_rows if self.lengths[r] < self.max_len]
        if not active:
            return {}
        lm = self.model.language_model
        dev = self.valid.device
        slot = torch.tensor(self.lengths, device=dev).clamp_max(self.max_len - 1)
        self.valid[torch.arange(self.rows, device=dev), slot] = True  # idle rows: their slot 0, set already
        longest = max(self.lengths[r] for r in active) + 1
        if self.compile:
            used = min(self.max_len, max(512, 1 << (longest - 1).bit_length()))
        else:
            used = min(self.max_len, -(-longest // 64) * 64)
        tokens = torch.tensor(self.tokens, device=dev).view(-1, 1)
        rope = lm.rotary(slot.view(-1, 1), 0, lm.head.weight.dtype, per_row=True)
        step = compiled_row_step(lm) if self.compile else _row_step
        with _caches_installed(lm, self.caches):
            logits = step(lm, tokens, slot.view(-1, 1), self.valid[:, None, None, :used], rope)
        plain = [r for r in active if self.samplers[r].greedy and not self.samplers[r].use_penalty]
        chosen = dict(zip(plain, logits[plain].argmax(-1).tolist())) if plain else {}
        for r in active:
            if r not in chosen:
                token = self.samplers[r](logits[r : r + 1])
                self.samplers[r].observe(token)
                chosen[r] = int(token[0])
            self.tokens[r] = chosen[r]
            self.lengths[r] += 1
        return {r: chosen[r] for r in active}

    def remove(self, row: int) -> None:
        """Free ``row`` (finished or cancelled)."""
        self.samplers[row] = None
        self.valid[row] = False
        self.valid[row, 0] = True
        self.lengths[row] = 0
        self.tokens[row] = self.pad_id

    def close(self) -> None:
        """Drop the caches (the batch cannot be used afterwards)."""
        self.caches = []


@contextmanager
def _caches_installed(lm, caches):
    """Put ``caches`` into the attention modules for one call, then restore what was there."""
    modules = list(lm.attention_modules())
    old = [attn.cache for attn in modules]
    for attn, cache in zip(modules, caches):
        attn.cache = cache
    try:
        yield
    finally:
        for attn, cache in zip(modules, old):
            attn.cache = cache
