"""Give a trained tessera-synth checkpoint whole-phrase tokens: ``top▁right`` as one piece, not ``top`` + ``▁right``.

Why: the bundled model answered "Where is the red star?" with the right row and a row-mate's column
(docs/bundled-model/history.md, fourteenth session). With two tokens, the second one ("right") is predicted
right after "top", and a small LLM takes the column of any shape in that row: the lookup is keyed by the word
just written, not by the shape asked. As one token, a place is looked up once, like a colour or a kind.

:func:`extend_checkpoint` inserts the phrases as sentencepiece user-defined pieces just before the 6 chat
pieces (so the chat pieces stay the last ones and the layout of :mod:`tessera.synth.tokenizer` holds with
``vocab_size + len(phrases)`` pieces), rewrites the three JSON tokenizer files for the new size, and grows the
LLM's ``tok_embeddings`` and ``output`` matrices to match: old rows move to their tokens' new ids, and a new
phrase's row starts as the mean of the rows of the tokens it used to be. The text a model reads and writes is
unchanged; only its segmentation is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import sentencepiece as spm
import torch
from safetensors.torch import load_file, save_file

from . import spm_proto
from . import vocab as V
from .tokenizer import CHAT_PIECES, hf_files

EMBEDDING_KEYS = ("language_model.model.tok_embeddings.weight", "language_model.output.weight")
PLACE_PHRASES = tuple(p for p in V.POSITIONS if " " in p)  # "center" is one token already


def add_phrases(model: bytes, phrases: tuple[str, ...]) -> bytes:
    """``tokenizer.model`` bytes with ``phrases`` as user-defined pieces before the chat pieces."""
    pieces = spm_proto.pieces_of(model)
    if tuple(p for p, _, _ in pieces[-len(CHAT_PIECES):]) != CHAT_PIECES:
        raise ValueError("not a tessera.synth tokenizer: its last pieces are not the 6 chat pieces")
    known = {p for p, _, _ in pieces}
    new = [ph.replace(" ", "\u2581") for ph in phrases]
    if already := [p for p in new if p in known]:
        raise ValueError(f"the tokenizer has these pieces already: {already}")
    return spm_proto.insert_pieces(model, len(pieces) - len(CHAT_PIECES), new)


def id_map(old_pieces: int, n_new: int, n_added: int) -> list[int]:
    """New id of every old id (sentencepiece pieces, then the ``n_added`` added tokens); phrases take
    ``old_pieces - 6 .. old_pieces - 7 + n_new``."""
    first_chat = old_pieces - len(CHAT_PIECES)
    return [i if i < first_chat else i + n_new for i in range(old_pieces + n_added)]


def extend_checkpoint(src: str | Path, dst: str | Path, phrases: tuple[str, ...] = PLACE_PHRASES) -> Path:
    """Write ``src`` to ``dst`` with ``phrases`` as single tokens (tokenizer files, config vocab size and the
    embedding and output matrices, shape ``(vocab, hidden)``); every other file is copied as is. ``dst`` is
    replaced whole, and only once complete. Returns ``dst``."""
    src, dst = Path(src), Path(dst)
    old_model = (src / "tokenizer.model").read_bytes()
    new_model = add_phrases(old_model, phrases)
    old_sp = spm.SentencePieceProcessor(model_proto=old_model)
    n_old, n_new = old_sp.get_piece_size(), len(phrases)
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    vocab = config["llm_config"]["vocab_size"]
    mapping = id_map(n_old, n_new, vocab - n_old)
    state = load_file(src / "model.safetensors")
    for key in EMBEDDING_KEYS:
        old = state[key]
        if old.shape[0] != vocab:
            raise ValueError(f"{key} has {old.shape[0]} rows, config.json says vocab_size={vocab}")
        grown = old.new_zeros(vocab + n_new, old.shape[1])
        grown[torch.tensor(mapping)] = old
        for j, phrase in enumerate(phrases):
            parts = old_sp.encode(phrase)
            grown[n_old - len(CHAT_PIECES) + j] = old[parts].mean(0)
        state[key] = grown
    tmp = dst.with_name(dst.name + ".tmp-phrases")  # renamed into place: never a half-written checkpoint
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "config.json", "tokenizer.model"):
            shutil.copy2(f, tmp / f.name)
    save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
    config["llm_config"]["vocab_size"] = vocab + n_new
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (tmp / "tokenizer.model").write_bytes(new_model)
    for name, content in hf_files(n_old + n_new).items():
        (tmp / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst
