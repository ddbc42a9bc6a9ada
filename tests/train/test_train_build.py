"""Init modes: a separate ViT + LLM (+ mlp1) with a plain LLM tokenizer that lacks the InternVL tokens."""

from __future__ import annotations

import json
import shutil

import torch
from safetensors.torch import load_file, save_file

from tessera.config import ChatConfig
from tessera.templates import get_template, image_tokens, render
from tessera.tokenizer import Tokenizer
from tessera.train import TrainConfig
from tessera.train.model_setup import build_model
from tessera.train.tokens import INTERNVL_TOKENS, missing_internvl_tokens

from conftest import conformance_path

SOURCE = "mini-internvl-chat-2b-v1-5-tiny"


def plain_tokenizer(src, dst):
    """The tiny InternLM2 tokenizer without the nine InternVL tokens (what an LLM repo ships)."""
    dst.mkdir()
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, dst / name)
    cfg = json.loads((src / "tokenizer_config.json").read_text())
    cfg["added_tokens_decoder"] = {k: v for k, v in cfg["added_tokens_decoder"].items() if v["content"] not in INTERNVL_TOKENS}
    cfg.pop("additional_special_tokens", None)
    (dst / "tokenizer_config.json").write_text(json.dumps(cfg))
    smap = json.loads((src / "special_tokens_map.json").read_text())
    smap.pop("additional_special_tokens", None)
    (dst / "special_tokens_map.json").write_text(json.dumps(smap))


def test_separate_vit_llm_and_projector(tmp_path):
    src = conformance_path("models", SOURCE)
    state = load_file(str(src / "model.safetensors"))
    config = ChatConfig.from_file(src)
    vit, llm = tmp_path / "vit", tmp_path / "llm"
    vit.mkdir()
    llm.mkdir()
    save_file({k.removeprefix("vision_model."): v for k, v in state.items() if k.startswith("vision_model.")},
              str(vit / "model.safetensors"))
    (vit / "config.json").write_text(json.dumps(config.vision_config.to_dict()))
    llm_state = {k.removeprefix("language_model."): v for k, v in state.items() if k.startswith("language_model.")}
    for key in ("model.tok_embeddings.weight", "output.weight"):
        llm_state[key] = llm_state[key][:1000].clone()  # the LLM's own vocabulary, before the InternVL tokens
    save_file(llm_state, str(llm / "model.safetensors"))
    llm_cfg = config.llm_config.to_dict() | {"vocab_size": 1000}
    (llm / "config.json").write_text(json.dumps(llm_cfg))
    plain_tokenizer(src, llm / "tok")
    shutil.copy(src / "tokenizer.model", llm / "tokenizer.model")
    torch.save({k.removeprefix("mlp1."): v for k, v in state.items() if k.startswith("mlp1.")}, tmp_path / "mlp.pth")

    assert missing_internvl_tokens(Tokenizer.from_dir(llm / "tok")) == list(INTERNVL_TOKENS)
    cfg = TrainConfig.from_dict({"model": {
        "vision_path": str(vit), "llm_path": str(llm), "mlp_path": str(tmp_path / "mlp.pth"),
        "tokenizer_path": str(llm / "tok"), "config": str(src), "freeze_llm": True}})
    built = build_model(cfg)
    model, tok = built.model, built.tokenizer

    reference = Tokenizer.from_dir(src)
    prompt = render(get_template("internlm2-chat"), [(0, image_tokens(2, 4) + "\nQ"), (1, "A")])
    assert tok.encode(prompt) == reference.encode(prompt)  # the nine tokens got the official ids
    assert len(tok) == 1009 and model.config.llm_config.vocab_size == 1009
    assert model.img_context_token_id == 1002
    ours = model.state_dict()
    for key, value in state.items():
        if key.endswith(("tok_embeddings.weight", "output.weight")):
            torch.testing.assert_close(ours[key][:1000], value[:1000].float(), rtol=0, atol=0)
        else:
            torch.testing.assert_close(ours[key], value.float(), rtol=0, atol=0, msg=key)
    head = ours["language_model.output.weight"]
    torch.testing.assert_close(head[1000:], head[:1000].mean(0, keepdim=True).expand(9, -1))  # mean init
    assert not model.language_model.training and model.vision_model.training
