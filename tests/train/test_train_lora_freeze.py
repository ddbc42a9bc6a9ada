"""LoRA merge gives a plain checkpoint with the adapter model's outputs; frozen modules stay unchanged;
the bundled stage recipes train exactly the modules the fact sheet names (section 7.2)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file
from synthetic import QUESTION, square_image, tiny_recipe, write_dataset

import tessera
from tessera.config import ChatConfig
from tessera.models.internvl import InternVLChatModel
from tessera.train import TrainConfig, list_recipes, train
from tessera.train.lora import merge_lora_
from tessera.train.model_setup import configure_training

from conftest import conformance_path

SOURCE = "internvl-chat-v1-5-tiny"


def run(tmp_path, name, **sections):
    meta = write_dataset(tmp_path / "data", 4, size=(112, 56), text_only=1)
    src = conformance_path("models", SOURCE)
    recipe = tiny_recipe(meta, tmp_path / name, tokenizer_dir=src, **sections)
    recipe["model"].update({"config": None, "tokenizer_path": None, "model_name_or_path": str(src)})
    return train(TrainConfig.from_dict(recipe)), load_file(str(src / "model.safetensors"))


def logits(model, vlm):
    pixels, counts = vlm.prepare_images([square_image("red", (112, 56), seed=0)])
    ids = torch.tensor([vlm.tokenizer.encode(vlm.build_prompt(QUESTION, num_patches_list=counts))])
    with torch.no_grad():
        return model.eval()(ids, pixels)


def test_lora_merge_matches_adapter_model_and_base_stays_frozen(tmp_path):
    result, source = run(
        tmp_path, "lora", lora={"llm_rank": 4, "vit_rank": 2},
        model={"freeze_backbone": True, "freeze_llm": True, "freeze_mlp": True},
        optim={"max_steps": 4, "learning_rate": 1e-2},
    )
    trained = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert trained and all(".lora_" in n for n in trained)
    assert any(n.startswith("vision_model.") for n in trained) and any(n.startswith("language_model.") for n in trained)
    out = load_file(str(result.final_dir / "model.safetensors"))
    assert set(out) == set(source)  # plain official keys, no peft names
    config = json.loads((result.final_dir / "config.json").read_text())
    assert config["use_llm_lora"] == 0 and config["use_backbone_lora"] == 0
    targets = ("attention.wqkv", "attention.wo", "feed_forward.w", "attn.qkv", "attn.proj", "mlp.fc")
    changed = {k for k in source if not torch.equal(source[k].float(), out[k])}
    assert changed and all(any(t in k for t in targets) for k in changed)  # only LoRA-target weights moved
    vlm = tessera.load(result.final_dir)
    adapter = logits(result.model, vlm)
    torch.testing.assert_close(logits(vlm.model, vlm), adapter, rtol=0, atol=1e-4)
    merged = merge_lora_(copy.deepcopy(result.model))
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged, vlm), adapter, rtol=0, atol=1e-4)


def test_stage1_freezing_keeps_the_llm_unchanged(tmp_path):
    result, source = run(tmp_path, "stage1", model={"freeze_llm": True, "drop_path_rate": 0.1},
                         optim={"max_steps": 3})
    out = load_file(str(result.final_dir / "model.safetensors"))
    for key in source:
        same = torch.equal(source[key].float(), out[key])
        if key.startswith("language_model."):
            assert same, key
    assert not torch.equal(source["mlp1.1.weight"].float(), out["mlp1.1.weight"])
    assert not torch.equal(source["vision_model.encoder.layers.1.mlp.fc2.weight"].float(),
                           out["vision_model.encoder.layers.1.mlp.fc2.weight"])


# fact sheet 7.2: what each official script trains
EXPECTED = {
    "internvl-chat-v1-5-pretrain": {"vision_model", "mlp1"},
    "mini-internvl-chat-2b-v1-5-pretrain": {"vision_model", "mlp1"},
    "mini-internvl-chat-4b-v1-5-pretrain": {"mlp1"},
    "internvl-chat-v1-5-finetune": {"vision_model", "mlp1", "language_model"},
    "mini-internvl-chat-2b-v1-5-finetune": {"vision_model", "mlp1", "language_model"},
    "mini-internvl-chat-4b-v1-5-finetune": {"vision_model", "mlp1", "language_model"},
    "internvl-chat-v1-5-2nd-finetune": {"mlp1", "language_model"},
    "mini-internvl-chat-2b-v1-5-2nd-finetune": {"mlp1", "language_model"},
    "mini-internvl-chat-4b-v1-5-2nd-finetune": {"mlp1", "language_model"},
    "internvl-chat-v1-5-2nd-finetune-lora": {"language_model.lora"},
    "mini-internvl-chat-2b-v1-5-2nd-finetune-lora": {"language_model.lora"},
    "mini-internvl-chat-4b-v1-5-2nd-finetune-lora": {"language_model.lora"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipes_train_the_modules_the_fact_sheet_names(name):
    assert name in list_recipes()
    cfg = TrainConfig.from_yaml(name)
    preset = "tiny-phi3" if "4b" in name else "tiny-internlm2"
    model = InternVLChatModel(ChatConfig.from_name(preset))
    configure_training(model, cfg)
    trained = set()
    for part in ("vision_model", "mlp1", "language_model"):
        params = list(getattr(model, part).named_parameters())
        flags = {p.requires_grad for _, p in params}
        if flags == {True}:
            trained.add(part)
        elif flags == {True, False}:  # partly trained: must be exactly the LoRA adapters
            assert all(p.requires_grad == (".lora_" in n) for n, p in params), part
            trained.add(part + ".lora")
    assert trained == EXPECTED[name]
    assert model.vision_model.encoder.gradient_checkpointing and model.language_model.gradient_checkpointing
