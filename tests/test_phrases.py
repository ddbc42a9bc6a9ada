"""tessera.synth.phrases: places as single tokens in a trained checkpoint, the model's function unchanged."""

from __future__ import annotations

import json

import pytest
import torch

import tessera
from tessera.synth import phrases, spm_proto
from tessera.synth.tokenizer import CHAT_PIECES, hf_files
from tessera.synth.vocab import POSITIONS
from tessera.tokenizer import Tokenizer

from conftest import random_synth_checkpoint


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """(a random tessera-tiny checkpoint with a freshly trained 512-piece synth tokenizer, it extended)."""
    root = tmp_path_factory.mktemp("ext")
    src = random_synth_checkpoint(root / "src")
    return src, phrases.extend_checkpoint(src, root / "dst")


@pytest.fixture(scope="module")
def loaded(extended):
    """The two checkpoints of ``extended``, loaded."""
    return tuple(tessera.load(path) for path in extended)


def test_places_are_one_token_and_text_is_unchanged(extended):
    src, dst = extended
    old, new = Tokenizer.from_dir(src), Tokenizer.from_dir(dst)
    assert len(new) == len(old) + len(phrases.PLACE_PHRASES)
    for place in phrases.PLACE_PHRASES:
        assert len(new.encode(place, add_special_tokens=False)) == 1, place
    texts = [f"What color is the shape at the {p}?" for p in POSITIONS] + [
        "<|im_start|>user\n<img><IMG_CONTEXT></img>\nWhere is the red star?<|im_end|>\n<|im_start|>assistant\n"
        "top right<|im_end|>", "top left: red circle\nbottom center: blue star", "stop rightly 12 图中"]
    for text in texts:
        assert new.decode(new.encode(text)) == old.decode(old.encode(text))
    for token in (*CHAT_PIECES, "<img>", "<IMG_CONTEXT>", "</box>"):  # same strings, ids moved up
        assert new.convert_ids_to_tokens(new.convert_tokens_to_ids(token)) == token


def test_layout_stays_the_synth_tokenizers(extended):
    _, dst = extended
    model = (dst / "tokenizer.model").read_bytes()
    pieces = [p for p, _, _ in spm_proto.pieces_of(model)]
    assert tuple(pieces[-len(CHAT_PIECES):]) == CHAT_PIECES
    for name, content in hf_files(len(pieces)).items():
        assert json.loads((dst / name).read_text(encoding="utf-8")) == content
    config = json.loads((dst / "config.json").read_text(encoding="utf-8"))
    assert config["llm_config"]["vocab_size"] == len(pieces) + 9


def test_same_function_on_text_without_places(loaded):
    """Where no place is written the new model computes the old one's logits, on the old tokens' new ids."""
    old, new = loaded
    prompt = "<|im_start|>user\nHow many red shapes are there?<|im_end|>\n<|im_start|>assistant\n"
    ids_old = torch.tensor([old.tokenizer.encode(prompt)])
    ids_new = torch.tensor([new.tokenizer.encode(prompt)])
    n_old = old.tokenizer.sp.get_piece_size()
    mapping = torch.tensor(phrases.id_map(n_old, len(phrases.PLACE_PHRASES), 9))
    assert torch.equal(mapping[ids_old], ids_new)
    with torch.no_grad():
        lo, ln = old.model(ids_old), new.model(ids_new)
    torch.testing.assert_close(ln[..., mapping], lo, rtol=0, atol=1e-5)


def test_a_place_starts_as_the_mean_of_its_old_tokens(loaded):
    old, new = loaded
    emb_old = old.model.language_model.model.tok_embeddings.weight
    emb_new = new.model.language_model.model.tok_embeddings.weight
    parts = old.tokenizer.encode("top right", add_special_tokens=False)
    (place,) = new.tokenizer.encode("top right", add_special_tokens=False)
    torch.testing.assert_close(emb_new[place], emb_old[parts].mean(0))


def test_extending_twice_is_refused(extended, tmp_path):
    _, dst = extended
    with pytest.raises(ValueError, match="has these pieces already"):
        phrases.extend_checkpoint(dst, tmp_path / "again")
