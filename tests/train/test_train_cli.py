"""Recipe parsing, overrides and the ``tessera train`` command line."""

from __future__ import annotations

import argparse

import pytest
import yaml

from tessera.train import RecipeError, TrainConfig, list_recipes
from tessera.train.cli import main, register


def test_overrides_are_coerced_and_checked():
    cfg = TrainConfig.from_yaml("mini-internvl-chat-2b-v1-5-finetune", [
        "learning_rate=1e-4", "optim.max_steps=10", "model.freeze_backbone=true", "data.meta_path=m.json",
        "lora.llm_targets=attention.wqkv,attention.wo", "run.resume=runs/x/checkpoint-4",
    ])
    assert cfg.optim.learning_rate == 1e-4 and isinstance(cfg.optim.learning_rate, float)
    assert cfg.optim.max_steps == 10 and cfg.model.freeze_backbone is True
    assert cfg.lora.llm_targets == ["attention.wqkv", "attention.wo"]
    assert cfg.run.resume == "runs/x/checkpoint-4"
    assert TrainConfig.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg  # YAML round trip
    assert cfg.with_overrides(["seed=1", "output_dir=o", "template=phi3-chat"]).model.template == "phi3-chat"
    with pytest.raises(RecipeError, match="no section has"):
        cfg.with_overrides(["nope=1"])
    with pytest.raises(RecipeError, match="expected an integer"):
        cfg.with_overrides(["max_steps=ten"])
    with pytest.raises(RecipeError, match="valid keys"):
        TrainConfig.from_dict({"optim": {"lr": 1}})


def test_recipe_values_follow_the_fact_sheet():
    # fact sheet 7.2: (lr, weight decay, drop path, max_seq_length, warmup) per official script
    table = {
        "internvl-chat-v1-5-pretrain": (1e-5, 0.05, 0.2, 4096, "100 steps"),
        "internvl-chat-v1-5-finetune": (2e-5, 0.05, 0.4, 4096, 0.03),
        "mini-internvl-chat-2b-v1-5-pretrain": (2e-5, 0.01, 0.1, 4096, "100 steps"),
        "mini-internvl-chat-2b-v1-5-finetune": (4e-5, 0.01, 0.1, 8192, 0.03),
        "mini-internvl-chat-4b-v1-5-pretrain": (2e-4, 0.05, 0.0, 4096, "100 steps"),
        "mini-internvl-chat-4b-v1-5-finetune": (4e-5, 0.05, 0.1, 8192, 0.03),
    }
    for name, (lr, wd, dp, seq, warm) in table.items():
        c = TrainConfig.from_yaml(name)
        assert (c.optim.learning_rate, c.optim.weight_decay, c.model.drop_path_rate, c.data.max_seq_length) == (lr, wd, dp, seq)
        assert (c.optim.warmup_steps == 100) if warm == "100 steps" else (c.optim.warmup_ratio == warm)
        assert c.optim.lr_scheduler == "cosine" and c.optim.max_grad_norm == 1.0 and c.model.max_dynamic_patch == 12
        assert c.data.group_by_length == name.endswith("finetune")
    lora = TrainConfig.from_yaml("internvl-chat-v1-5-2nd-finetune-lora")
    assert lora.lora.llm_rank == 16 and lora.lora.dropout == 0.05 and lora.lora.alpha is None


def test_cli(capsys, tmp_path):
    parser = argparse.ArgumentParser(prog="tessera")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "tiny-from-scratch", "max_steps=3", "--resume", "--print-recipe"])
    assert args.func(args) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["max_steps"] == 3 and printed["run"]["resume"] is True
    assert main(["--list"]) == 0
    assert capsys.readouterr().out.split() == list_recipes()
    assert main(["tiny-from-scratch", f"run.output_dir={tmp_path}"]) == 2
    assert "model.tokenizer_path" in capsys.readouterr().err
    assert main(["no-such-recipe"]) == 2
    assert "not found" in capsys.readouterr().err
