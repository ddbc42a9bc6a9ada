"""Train a small sentencepiece BPE tokenizer and write it in the released InternLM2 / InternVL-Chat file layout.

The result loads like the tokenizer of OpenGVLab/InternVL-Chat-V1-5 (official ``InternLM2Tokenizer``, and
``tessera.tokenizer.Tokenizer.from_dir``): same files, same keys and flags, ids laid out the same way. For a
tokenizer of ``vocab_size`` = V sentencepiece pieces:

* ``tokenizer.model``: BPE with byte fallback, split digits, identity normalisation, no dummy prefix, no
  whitespace cleanup; ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2; the last 6 pieces (ids V-6 .. V-1) are the
  user-defined chat tokens ``<|plugin|> <|interpreter|> <|action_end|> <|action_start|> <|im_end|> <|im_start|>``.
* ``added_tokens.json``: the 9 InternVL tokens ``<img> </img> <IMG_CONTEXT> <quad> </quad> <ref> </ref> <box>
  </box>`` at ids V .. V+8 (so the LLM's vocab_size is V + 9).
* ``special_tokens_map.json``, ``tokenizer_config.json``: as in the release (pad = ``</s>``, auto_map to
  ``tokenization_internlm2.InternLM2Tokenizer``, model_max_length 4096, ...).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import sentencepiece as spm

from . import spm_proto

CHAT_PIECES = ("<|plugin|>", "<|interpreter|>", "<|action_end|>", "<|action_start|>", "<|im_end|>", "<|im_start|>")
INTERNVL_TOKENS = ("<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>")
MODEL_PREFIX = "tessera_synth_sp"
_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_sentencepiece(corpus: list[str], vocab_size: int) -> bytes:
    """Train the BPE model on ``corpus`` lines; returns the serialized ``tokenizer.model`` with the chat pieces."""
    n_train = vocab_size - len(CHAT_PIECES)
    if n_train < 300:
        raise ValueError(f"vocab_size={vocab_size} too small: byte fallback alone needs 259 pieces; use >= 320")
    lines = [line for line in corpus if line]
    if not lines:
        raise ValueError("empty corpus: pass tessera.synth.text_corpus() or other text lines")
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=writer,
            model_type="bpe",
            vocab_size=n_train,
            character_coverage=0.9995,
            byte_fallback=True,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            normalization_rule_name="identity",
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            max_sentence_length=65536,
            shuffle_input_sentence=False,
            num_threads=1,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            unk_piece="<unk>",
            bos_piece="<s>",
            eos_piece="</s>",
            minloglevel=2,
        )
    except RuntimeError as err:
        raise ValueError(
            f"sentencepiece could not train {n_train} pieces on this corpus ({err}); lower vocab_size or add text"
        ) from err
    model = spm_proto.set_trainer_string(writer.getvalue(), 2, MODEL_PREFIX)
    return spm_proto.append_pieces(model, list(CHAT_PIECES))


def _token(content: str, special: bool | None = None) -> dict:
    entry = {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    if special is not None:
        entry["special"] = special
    return entry


def hf_files(vocab_size: int) -> dict[str, dict]:
    """The three JSON files of the InternLM2 layout for a sentencepiece vocabulary of ``vocab_size`` pieces."""
    chat_ids = {p: vocab_size - len(CHAT_PIECES) + i for i, p in enumerate(CHAT_PIECES)}
    added = {t: vocab_size + i for i, t in enumerate(INTERNVL_TOKENS)}
    additional = ["<|im_start|>", "<|im_end|>", "<|action_start|>", "<|action_end|>", "<|interpreter|>", "<|plugin|>"]
    decoder = {0: "<unk>", 1: "<s>", 2: "</s>"} | {i: p for p, i in chat_ids.items()} | {i: t for t, i in added.items()}
    special_tokens_map = {
        "additional_special_tokens": additional + [_token(t) for t in INTERNVL_TOKENS],
        "bos_token": _token("<s>"),
        "eos_token": _token("</s>"),
        "pad_token": _token("</s>"),
        "unk_token": _token("<unk>"),
    }
    tokenizer_config = {
        "added_tokens_decoder": {str(i): _token(t, special=True) for i, t in decoder.items()},
        "additional_special_tokens": additional + list(INTERNVL_TOKENS),
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "bos_token": "<s>",
        "chat_template": _CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "model_max_length": 4096,
        "pad_token": "</s>",
        "tokenizer_class": "InternLM2Tokenizer",
        "unk_token": "<unk>",
    }
    return {
        "added_tokens.json": added,
        "special_tokens_map.json": special_tokens_map,
        "tokenizer_config.json": tokenizer_config,
    }


def train_tokenizer(out_dir: str | Path, corpus: list[str] | None = None, vocab_size: int = 1000) -> Path:
    """Train on ``corpus`` (default: :func:`tessera.synth.text_corpus`) and write the 4 tokenizer files.

    ``vocab_size`` counts sentencepiece pieces, chat pieces included; the LLM needs ``vocab_size + 9`` embedding
    rows. Deterministic: same corpus and size -> byte-identical files. Returns ``out_dir``.
    """
    if corpus is None:
        from .corpus import text_corpus

        corpus = text_corpus()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.model").write_bytes(train_sentencepiece(corpus, vocab_size))
    for name, content in hf_files(vocab_size).items():
        (out / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out
