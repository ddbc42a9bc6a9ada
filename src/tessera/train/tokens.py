"""The nine InternVL tokens in the tokenizer and the LLM vocabulary (fact sheet 3.3 and 7.6).

Training needs ``<img>``, ``</img>``, ``<IMG_CONTEXT>``, ``<quad>``, ``</quad>``, ``<ref>``, ``</ref>``,
``<box>``, ``</box>`` in the tokenizer. A plain LLM tokenizer (stage 1 from a separate LLM) lacks them:
:func:`with_internvl_tokens` adds them after the last id, as special tokens, the way the official
``add_tokens(..., special_tokens=True)`` + ``save_pretrained`` would write the files. :func:`resize_vocab`
then fits the LLM's embedding and head to ``len(tokenizer)``: new output rows get the mean of the old
rows, new input rows a normal init; a larger vocabulary is cut (Phi-3 32064 -> 32020).
"""

from __future__ import annotations

import json

import torch
from torch import nn

from ..models.decoder import CausalLM
from ..tokenizer import Tokenizer

INTERNVL_TOKENS = ("<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>")


def missing_internvl_tokens(tokenizer: Tokenizer) -> list[str]:
    return [t for t in INTERNVL_TOKENS if t not in tokenizer.added_tokens]


def with_internvl_tokens(tokenizer: Tokenizer) -> Tokenizer:
    """``tokenizer`` if it has all nine tokens, else a new one with the missing ones appended."""
    missing = missing_internvl_tokens(tokenizer)
    if not missing:
        return tokenizer
    files = dict(tokenizer._files)
    cfg = json.loads(files["tokenizer_config.json"])
    smap = json.loads(files.get("special_tokens_map.json", b"{}"))
    added = json.loads(files.get("added_tokens.json", b"{}"))
    decoder = cfg.setdefault("added_tokens_decoder", {})
    next_id = len(tokenizer)
    for tok in missing:
        decoder[str(next_id)] = {
            "content": tok, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True,
        }
        added[tok] = next_id
        next_id += 1
    extra = list(smap.get("additional_special_tokens", cfg.get("additional_special_tokens", [])) or [])
    extra += [t for t in missing if t not in extra]
    smap["additional_special_tokens"] = extra
    cfg["additional_special_tokens"] = extra
    files["tokenizer_config.json"] = json.dumps(cfg, indent=2, ensure_ascii=False).encode()
    files["special_tokens_map.json"] = json.dumps(smap, indent=2, ensure_ascii=False).encode()
    files["added_tokens.json"] = json.dumps(added, indent=2, ensure_ascii=False).encode()
    return Tokenizer(files, source=tokenizer.source)


@torch.no_grad()
def resize_vocab(lm: CausalLM, size: int, init_std: float = 0.02) -> None:
    """Fit ``lm``'s input embedding and head to ``size`` rows and set ``vocab_size`` in its config."""
    emb, head = lm.embed_tokens, lm.head
    old = emb.weight.shape[0]
    if old == size:
        return
    hidden = emb.weight.shape[1]
    new_emb = nn.Embedding(size, hidden, device=emb.weight.device, dtype=emb.weight.dtype)
    new_head = nn.Linear(hidden, size, bias=False, device=head.weight.device, dtype=head.weight.dtype)
    keep = min(old, size)
    new_emb.weight[:keep] = emb.weight[:keep]
    new_head.weight[:keep] = head.weight[:keep]
    if size > old:
        new_emb.weight[old:].normal_(0.0, init_std)
        new_head.weight[old:] = head.weight.mean(dim=0, keepdim=True)
    setattr(lm.model, lm.model.embed_name, new_emb)
    setattr(lm, lm.head_name, new_head)
    lm.config.vocab_size = size
