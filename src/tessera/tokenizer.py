"""SentencePiece tokenizers of the InternVL 1.5 checkpoints, without ``transformers``.

The official code loads ``InternLM2Tokenizer`` (InternVL-Chat-V1-5, Mini-2B) or the slow
``LlamaTokenizer`` with ``legacy=False`` (Mini-4B, Phi-3) through transformers 4.37.2. Prompts
and decoded answers must match those byte for byte, so this module reproduces their exact rules:

* Encoding: the text is cut on every added token (one compiled regex, longest match first);
  ``rstrip``/``lstrip`` tokens eat the whitespace beside them; the pieces between go through
  sentencepiece; BOS is prepended when ``add_bos_token`` (EOS when ``add_eos_token``).
  Llama ``legacy=False`` prefixes the whole text with "▁", disables the model's dummy prefix, and
  encodes chunks that start with a space as ``unk + chunk`` minus the unk pieces; a lone leading
  "▁" is dropped only when the next token is in ``all_special_tokens``.
* Decoding (``PreTrainedTokenizer._decode``): with ``skip_special_tokens`` ids in
  ``all_special_ids`` go; added tokens that are not special, and additional special tokens whose id
  is >= the sentencepiece size, stand alone and are joined to their neighbours with single spaces;
  the runs between them go through the flavour's ``convert_tokens_to_string`` (InternLM2: a space
  before each run that ends at a special token, then ``clean_up_tokenization``; Llama: the first
  piece loses its leading "▁"). Invalid byte-fallback sequences become U+FFFD.

:class:`IncrementalDecoder` streams text for generation, one token id at a time.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

log = logging.getLogger(__name__)

SPIECE_UNDERLINE = "\u2581"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
_FLAVOURS = {
    "InternLM2Tokenizer": "internlm2",
    "InternLM2TokenizerFast": "internlm2",  # the official code loads it with use_fast=False
    "LlamaTokenizer": "llama",
    "LlamaTokenizerFast": "llama",
}
# transformers' SPECIAL_TOKENS_ATTRIBUTES order decides the order of all_special_tokens.
_SPECIAL_ATTRS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# ModelProto field 3 (normalizer_spec) = NormalizerSpec{field 3 (add_dummy_prefix) = false}. Protobuf
# merges repeated occurrences of a message field, so appending these bytes is MergeFrom (what
# transformers does with the protobuf package for legacy=False) without needing protobuf.
_NO_DUMMY_PREFIX = b"\x1a\x02\x18\x00"


def clean_up_tokenization(text: str) -> str:
    """transformers' ``clean_up_tokenization``: removes the space before punctuation and contractions."""
    return (
        text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
        .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
        .replace(" 've", "'ve").replace(" 're", "'re")
    )


# Endings that clean_up_tokenization could still rewrite once more text follows (proper prefixes of
# its patterns); the incremental decoder holds them back.
_CLEANUP_PARTIALS = (" n'", " 'v", " 'r", " '", " n", " ")


@dataclass(frozen=True)
class AddedToken:
    """One entry of ``added_tokens_decoder``: its text, id and matching flags."""

    content: str
    id: int
    special: bool = False
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False
    normalized: bool = False


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-download the tokenizer files") from e


def _token_content(value) -> str | None:
    """A special-token entry is a string or a serialised AddedToken dict (``{"content": ...}``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "content" in value:
        return value["content"]
    raise ValueError(f"cannot read special token entry {value!r}: expected a string or a dict with 'content'")


class Tokenizer:
    """Exact re-implementation of the official slow InternLM2 / Llama (legacy=False) tokenizers.

    Build it with :meth:`from_dir` on a checkpoint or tokenizer folder. Ids are plain Python ints.
    """

    def __init__(self, files: dict[str, bytes], source: Path | None = None):
        """``files`` maps the names in :data:`TOKENIZER_FILES` to their bytes (``tokenizer.model`` and
        ``tokenizer_config.json`` are required)."""
        for name in ("tokenizer.model", "tokenizer_config.json"):
            if name not in files:
                raise FileNotFoundError(f"tokenizer file {name} is missing" + (f" in {source}" if source else ""))
        self._files = dict(files)
        self.source = source
        cfg = json.loads(files["tokenizer_config.json"].decode("utf-8"))
        smap = json.loads(files["special_tokens_map.json"].decode("utf-8")) if "special_tokens_map.json" in files else {}
        extra = json.loads(files["added_tokens.json"].decode("utf-8")) if "added_tokens.json" in files else {}
        cls = cfg.get("tokenizer_class")
        if cls not in _FLAVOURS:
            raise ValueError(
                f"unsupported tokenizer_class {cls!r} in tokenizer_config.json; tessera supports "
                f"{sorted(_FLAVOURS)} (the InternVL 1.5 checkpoints use InternLM2Tokenizer or LlamaTokenizer)"
            )
        self.flavour = _FLAVOURS[cls]
        self.add_bos_token = bool(cfg.get("add_bos_token", True))
        self.add_eos_token = bool(cfg.get("add_eos_token", False))
        legacy = cfg.get("legacy")
        self.legacy = True if legacy is None else bool(legacy)  # transformers 4.37.2: None -> True
        self.model_max_length = cfg.get("model_max_length")

        model = files["tokenizer.model"]
        if self.flavour == "llama" and not self.legacy:
            model = model + _NO_DUMMY_PREFIX
        self.sp = spm.SentencePieceProcessor(**cfg.get("sp_model_kwargs", {}))
        self.sp.LoadFromSerializedProto(model)
        self.sp_size = self.sp.get_piece_size()

        # Special-token attributes: tokenizer_config, overridden by special_tokens_map (as from_pretrained).
        special = {k: _token_content(cfg.get(k)) for k in _SPECIAL_ATTRS}
        special.update({k: _token_content(smap[k]) for k in _SPECIAL_ATTRS if k in smap})
        additional = smap.get("additional_special_tokens", cfg.get("additional_special_tokens", [])) or []
        self._special = special
        self.additional_special_tokens = [_token_content(t) for t in additional]

        # Added tokens: added_tokens_decoder, then added_tokens.json entries it lacks (non-special).
        added: dict[int, AddedToken] = {}
        for sid, d in cfg.get("added_tokens_decoder", {}).items():
            added[int(sid)] = AddedToken(
                d["content"], int(sid), bool(d.get("special", False)), bool(d.get("lstrip", False)),
                bool(d.get("rstrip", False)), bool(d.get("single_word", False)), bool(d.get("normalized", False)),
            )
        known = {t.content for t in added.values()}
        for content, idx in extra.items():
            if content not in known and int(idx) not in added:
                added[int(idx)] = AddedToken(content, int(idx))
                known.add(content)
        for content in [*special.values(), *self.additional_special_tokens]:
            if content is None or content in known:
                continue
            idx = self.sp.piece_to_id(content)
            if idx == self.sp.unk_id() and content != self.sp.id_to_piece(idx):
                raise ValueError(
                    f"special token {content!r} is neither in added_tokens_decoder/added_tokens.json nor a "
                    "sentencepiece piece: the tokenizer files are inconsistent"
                )
            added[idx] = AddedToken(content, idx, special=True)
            known.add(content)
        self._added_by_id = dict(sorted(added.items()))
        self._added_by_text = {t.content: t.id for t in self._added_by_id.values()}
        self._split_re = (
            re.compile("|".join(re.escape(t) for t in sorted(self._added_by_text, key=len, reverse=True)))
            if self._added_by_text else None
        )

        seen: list[str] = []
        for content in [special[k] for k in _SPECIAL_ATTRS] + self.additional_special_tokens:
            if content is not None and content not in seen:
                seen.append(content)
        self.all_special_tokens: list[str] = seen
        self._all_special_set = frozenset(seen)
        self._all_special_ids = [self._token_to_id(t) for t in seen]
        self._all_special_id_set = frozenset(self._all_special_ids)
        # Tokens _decode emits on their own (transformers calls them legacy_added_tokens).
        self._standalone = frozenset(
            (set(self._added_by_text) - self._all_special_set)
            | {t for t in self.additional_special_tokens if self._token_to_id(t) >= self.sp_size}
        )
        self._unk_len = len(self.sp.encode(str(special["unk_token"]))) if special["unk_token"] else 0

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_dir(cls, path: str | Path) -> Tokenizer:
        """Load ``tokenizer.model``, ``tokenizer_config.json`` and (if present) ``special_tokens_map.json``
        and ``added_tokens.json`` from a checkpoint or tokenizer folder."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"tokenizer folder {path} does not exist")
        files = {name: (path / name).read_bytes() for name in TOKENIZER_FILES if (path / name).is_file()}
        for name in ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
            if name in files:
                _read_json(path / name)  # clear error on a broken file
        return cls(files, source=path)

    def save(self, path: str | Path) -> None:
        """Write the tokenizer files this tokenizer was loaded from (byte-identical) into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, data in self._files.items():
            (path / name).write_bytes(data)

    # ------------------------------------------------------------------ vocabulary
    def __len__(self) -> int:
        """Sentencepiece size plus the added tokens beyond it (= the LLM ``vocab_size``)."""
        return self.sp_size + sum(1 for i in self._added_by_id if i >= self.sp_size)

    @property
    def vocab_size(self) -> int:
        """Sentencepiece size only (transformers' ``vocab_size``); see ``len()`` for the full size."""
        return self.sp_size

    @property
    def added_tokens(self) -> dict[str, int]:
        """Every added token (specials included) -> id."""
        return dict(self._added_by_text)

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return dict(self._added_by_id)

    def _special_id(self, attr: str) -> int | None:
        content = self._special[attr]
        return None if content is None else self._token_to_id(content)

    @property
    def bos_token_id(self) -> int | None:
        return self._special_id("bos_token")

    @property
    def eos_token_id(self) -> int | None:
        return self._special_id("eos_token")

    @property
    def pad_token_id(self) -> int | None:
        return self._special_id("pad_token")

    @property
    def unk_token_id(self) -> int | None:
        return self._special_id("unk_token")

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of ``all_special_tokens`` (bos, eos, unk, ..., additional special tokens), deduplicated."""
        return list(self._all_special_ids)

    def _token_to_id(self, token: str) -> int:
        idx = self._added_by_text.get(token)
        return idx if idx is not None else self.sp.piece_to_id(token)  # unknown piece -> unk id

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Token string(s) -> id(s); unknown tokens give the unk id, as in transformers."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(t) for t in tokens]

    def _id_to_token(self, idx: int) -> str:
        tok = self._added_by_id.get(idx)
        if tok is not None:
            return tok.content
        if not 0 <= idx < self.sp_size:
            raise IndexError(f"token id {idx} is out of range for this tokenizer (len {len(self)})")
        return self.sp.id_to_piece(idx)

    def convert_ids_to_tokens(self, ids: int | Iterable[int], skip_special_tokens: bool = False):
        """Id(s) -> token string(s); ``skip_special_tokens`` drops ids in ``all_special_ids``."""
        if hasattr(ids, "tolist"):  # numpy / torch, scalar or array
            ids = ids.tolist()
        if isinstance(ids, int):
            return self._id_to_token(ids)
        return [
            self._id_to_token(i) for i in map(int, ids)
            if not (skip_special_tokens and i in self._all_special_id_set)
        ]

    # ------------------------------------------------------------------ encoding
    def _split_added(self, text: str) -> list[str]:
        """Cut ``text`` around added tokens (leftmost, longest match), without empty pieces."""
        if self._split_re is None:
            return [text] if text else []
        out, start = [], 0
        for m in self._split_re.finditer(text):
            if m.start() > start:
                out.append(text[start:m.start()])
            out.append(m.group())
            start = m.end()
        if start < len(text):
            out.append(text[start:])
        return out

    def _tokenize_base(self, text: str) -> list[str]:
        """``PreTrainedTokenizer.tokenize``: split on added tokens, apply their strip flags, spm the rest."""
        chunks = self._split_added(text)
        added = self._added_by_text
        for i, chunk in enumerate(chunks):
            if chunk not in added:
                continue
            tok = self._added_by_id[added[chunk]]
            left = chunks[i - 1] if i > 0 else None
            right = chunks[i + 1] if i < len(chunks) - 1 else None
            if tok.rstrip and right:
                chunks[i + 1] = right.lstrip()
            if tok.lstrip and left:
                chunks[i - 1] = left.rstrip()
            if tok.single_word and left and left[-1] != " ":
                chunks[i - 1] += chunk
                chunks[i] = ""
            elif tok.single_word and right and right[0] != " ":
                chunks[i] += right
                chunks[i + 1] = ""
        tokens: list[str] = []
        for chunk in chunks:
            if not chunk:
                continue
            if chunk in added:
                tokens.append(chunk)
            else:
                tokens.extend(self._spm_tokenize(chunk))
        return tokens

    def _spm_tokenize(self, text: str) -> list[str]:
        """The flavour's ``_tokenize`` for text without added tokens."""
        if self.flavour == "internlm2" or self.legacy or not text.startswith((SPIECE_UNDERLINE, " ")):
            return self.sp.encode(text, out_type=str)
        # Llama legacy=False: encode "<unk>" + text and drop the unk pieces, so the leading space
        # survives although the dummy prefix is off.
        pieces = self.sp.encode(self._special["unk_token"] + text, out_type=str)
        return pieces[self._unk_len:] if len(pieces) >= self._unk_len else pieces

    def tokenize(self, text: str) -> list[str]:
        """Text -> token strings, without BOS/EOS."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize() takes a str, got {type(text).__name__}")
        if self.flavour == "internlm2" or self.legacy or not text:
            return self._tokenize_base(text)
        tokens = self._tokenize_base(SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " "))
        if len(tokens) > 1 and tokens[0] == SPIECE_UNDERLINE and tokens[1] in self._all_special_set:
            tokens = tokens[1:]
        return tokens

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Text -> ids; ``add_special_tokens`` adds BOS (``add_bos_token``) / EOS (``add_eos_token``)."""
        ids = [self._token_to_id(t) for t in self.tokenize(text)]
        if add_special_tokens:
            if self.add_bos_token:
                ids = [self.bos_token_id, *ids]
            if self.add_eos_token:
                ids = [*ids, self.eos_token_id]
        return ids

    def batch_encode(
        self, texts: Sequence[str], *, padding_side: str = "left", add_special_tokens: bool = True
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Encode and pad to the longest with ``pad_token_id``: returns (input_ids, attention_mask),
        both ``len(texts)`` lists of equal length. ``batch_chat`` pads on the left."""
        if isinstance(texts, str):
            raise TypeError("batch_encode() takes a list of strings; use encode() for one string")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        encoded = [self.encode(t, add_special_tokens=add_special_tokens) for t in texts]
        width = max((len(e) for e in encoded), default=0)
        if self.pad_token_id is None and any(len(e) < width for e in encoded):
            raise ValueError("this tokenizer has no pad_token; cannot pad a batch of different lengths")
        ids, mask = [], []
        for e in encoded:
            pad = width - len(e)
            if padding_side == "left":
                ids.append([self.pad_token_id] * pad + e)
                mask.append([0] * pad + [1] * len(e))
            else:
                ids.append(e + [self.pad_token_id] * pad)
                mask.append([1] * len(e) + [0] * pad)
        return ids, mask

    # ------------------------------------------------------------------ decoding
    def _run_to_string(self, tokens: list[str]) -> str:
        """The flavour's ``convert_tokens_to_string`` for a run of tokens without standalone tokens."""
        if self.flavour == "llama" and tokens[0].startswith(SPIECE_UNDERLINE):
            tokens = [tokens[0][1:], *tokens[1:]]
        if self._all_special_set.isdisjoint(tokens):  # fast path, same result
            out = self.sp.decode(tokens)
        else:
            out, sub, prev_special = "", [], False
            space_before_special = self.flavour == "internlm2" or self.legacy
            for i, tok in enumerate(tokens):
                if tok in self._all_special_set:
                    if space_before_special and not prev_special and (self.flavour == "internlm2" or i != 0):
                        out += " "
                    out += self.sp.decode(sub) + tok
                    prev_special, sub = True, []
                else:
                    sub.append(tok)
                    prev_special = False
            out += self.sp.decode(sub)
        if self.flavour == "internlm2":
            # The official code adds a prefix space unless tokens[0] is in a set of *ids* (never true
            # for a token string), then drops the first character: the two cancel out.
            out = (" " + clean_up_tokenization(out))[1:]
        return out

    def _tokens_to_text(self, tokens: list[str]) -> str:
        """``PreTrainedTokenizer._decode`` after the ids became tokens (spaces_between_special_tokens)."""
        if self._standalone.isdisjoint(tokens):  # fast path, same result
            return self._run_to_string(tokens) if tokens else ""
        parts, run = [], []
        for tok in tokens:
            if tok in self._standalone:
                if run:
                    text = self._run_to_string(run)
                    if text:
                        parts.append(text)
                    run = []
                parts.append(tok)
            else:
                run.append(tok)
        if run:
            parts.append(self._run_to_string(run))
        return " ".join(parts)

    def decode(self, ids: int | Iterable[int], skip_special_tokens: bool = False) -> str:
        """Ids -> text, exactly as transformers 4.37.2 ``decode`` (clean_up_tokenization_spaces=False)."""
        return self._tokens_to_text(self.convert_ids_to_tokens(_as_list(ids), skip_special_tokens))

    def batch_decode(self, rows: Iterable[Iterable[int]], skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(r, skip_special_tokens) for r in _as_list(rows)]

    def __repr__(self) -> str:
        return f"Tokenizer(flavour={self.flavour!r}, len={len(self)}, source={str(self.source)!r})"


def _as_list(ids) -> list:
    """Accept lists, tuples, numpy arrays and torch tensors (``.tolist()``), or a single int."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, int):
        return [ids]
    return list(ids)


def check_vocab(tokenizer: Tokenizer, vocab_size: int) -> None:
    """Check that the LLM embedding table (``vocab_size`` rows) covers every token id.

    Raises ValueError when the tokenizer has more tokens than the model (ids would index past the
    embedding); warns when the model is larger (harmless padding rows, e.g. Phi-3's 32064 default).
    """
    n = len(tokenizer)
    if n > vocab_size:
        raise ValueError(
            f"tokenizer has {n} tokens but the language model's vocab_size is {vocab_size}: token ids "
            f">= {vocab_size} would index past the embedding table. Use the tokenizer that belongs to "
            "this checkpoint, or resize the embeddings after adding tokens."
        )
    if n < vocab_size:
        warnings.warn(
            f"tokenizer has {n} tokens, fewer than the language model's vocab_size {vocab_size}; the extra "
            "embedding rows are never produced by the tokenizer",
            stacklevel=2,
        )


class IncrementalDecoder:
    """Streams the text of generated token ids, one id at a time.

    ``push(id)`` returns the text that became final with this id (possibly ""). ``flush()`` returns
    whatever is still held back; after it, the concatenation of everything returned equals
    ``tokenizer.decode(all_ids, skip_special_tokens)``. ``text`` is that full decode at any time.

    Each push decodes the whole id list (decoding is not prefix-stable, so diffing full decodes is
    the exact way) and holds back a tail that later ids could still change: trailing U+FFFD (an
    incomplete UTF-8 byte sequence, so Chinese characters come out whole), for InternLM2 the endings
    ``clean_up_tokenization`` may still rewrite (" ", " n", " '", ...), and, when special tokens are
    kept in the text of InternLM2 (or legacy Llama), the text after the last special token, because
    a following special token inserts a space before it.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self._tokens: list[str] = []
        self._boundary = 0  # tokens before this index end at a special/standalone token
        self._emitted = ""
        self._conflict = False
        tk = tokenizer
        self._space_before_special = not skip_special_tokens and (tk.flavour == "internlm2" or tk.legacy)

    @property
    def text(self) -> str:
        """Full decode of every id pushed so far (including the held-back tail)."""
        return self.tokenizer._tokens_to_text(self._tokens) if self._tokens else ""

    def _stable(self) -> str:
        """The decoded text minus the tail that later ids could still change."""
        tk = self.tokenizer
        if self._space_before_special:
            full = tk._tokens_to_text(self._tokens[: self._boundary]) if self._boundary else ""
        else:
            full = self.text
        n = len(full)
        while n and full[n - 1] == "\ufffd":
            n -= 1
        if tk.flavour == "internlm2":
            for tail in _CLEANUP_PARTIALS:
                if full.endswith(tail, 0, n):
                    n -= len(tail)
                    break
        return full[:n]

    def push(self, token_id: int) -> str:
        """Add one generated id; return the newly completed text."""
        token_id = int(token_id)
        tk = self.tokenizer
        if self.skip_special_tokens and token_id in tk._all_special_id_set:
            return ""
        tok = tk._id_to_token(token_id)
        self._tokens.append(tok)
        if tok in tk._all_special_set or tok in tk._standalone:
            self._boundary = len(self._tokens)
        return self._advance(self._stable())

    def _advance(self, stable: str) -> str:
        if self._conflict or len(stable) <= len(self._emitted):
            return ""
        if not stable.startswith(self._emitted):
            self._conflict = True
            log.warning("IncrementalDecoder: decoded text changed before the held-back tail; streaming stops")
            return ""
        new = stable[len(self._emitted):]
        self._emitted = stable
        return new

    def flush(self) -> str:
        """Return the held-back tail at the end of generation."""
        full = self.text
        if self._conflict or not full.startswith(self._emitted):
            return ""
        new = full[len(self._emitted):]
        self._emitted = full
        return new
