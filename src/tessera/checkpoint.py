"""Checkpoint I/O in the official Hugging Face layout.

A checkpoint directory holds ``config.json`` and either ``model.safetensors`` or shards
``model-0000k-of-0000n.safetensors`` with ``model.safetensors.index.json``, plus tokenizer files,
``generation_config.json`` and (for the official remote code) ``*.py`` files.

Loading builds the model on the meta device and assigns tensors shard by shard, cast to the target dtype
on the fly, so peak host memory stays near the model size in that dtype. Every key is checked: missing,
unexpected or mis-shaped tensors and unreadable shards are errors naming the file and key, never a silent
random init. Saving writes the same layout (bf16 by default) and copies the source's auxiliary files, so
the result loads in the official code, vLLM and LMDeploy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import ChatConfig, ConfigError
from .models.internvl import InternVLChatModel
from .parallel import device_fn, parse_devices

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
AUX_SUFFIXES = (".py", ".model", ".txt", ".tiktoken")
AUX_NAMES = (
    "generation_config.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.json", "preprocessor_config.json", "README.md", "LICENSE",
)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded as it is; the message names the file and the key."""


def resolve(path_or_repo_id: str | os.PathLike) -> Path:
    """A local checkpoint directory, or a Hugging Face repo id fetched with ``snapshot_download``."""
    path = Path(path_or_repo_id).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path}: expected a checkpoint directory (with config.json), got a file")
        return path
    text = str(path_or_repo_id)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise CheckpointError(f"{text}: no such directory (and not a Hugging Face repo id like 'org/name')")
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(text, allow_patterns=["*.json", "*.safetensors", "*.model", "*.py", "*.txt"])
        )
    except Exception as exc:  # network, auth, missing repo: all end the same way for the user
        raise CheckpointError(f"could not download {text!r} from the Hugging Face hub: {exc}") from exc


def shard_files(ckpt: Path) -> list[Path]:
    """The safetensors files of a checkpoint, in index order."""
    index = ckpt / INDEX_NAME
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise CheckpointError(f"{index}: not a valid safetensors index ({exc})") from None
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (ckpt / n).exists()]
        if missing:
            raise CheckpointError(f"{index} names shards that are missing: {', '.join(missing)}")
        return [ckpt / n for n in names]
    if (ckpt / SINGLE_NAME).exists():
        return [ckpt / SINGLE_NAME]
    raise CheckpointError(f"{ckpt}: no {SINGLE_NAME} or {INDEX_NAME} (weights are not in safetensors format?)")


def iter_tensors(files: list[Path]) -> Iterator[tuple[str, Path, torch.Tensor]]:
    """(key, file, tensor) for every tensor of every shard; one tensor in memory at a time."""
    for file in files:
        try:
            handle = safe_open(str(file), framework="pt")
            keys = list(handle.keys())
        except Exception as exc:
            raise CheckpointError(f"{file}: unreadable safetensors file (truncated or corrupt?): {exc}") from None
        with handle:
            for key in keys:
                try:
                    tensor = handle.get_tensor(key)
                except Exception as exc:
                    raise CheckpointError(f"{file}: tensor {key!r} cannot be read (truncated?): {exc}") from None
                yield key, file, tensor


def _set_param(model: torch.nn.Module, key: str, tensor: torch.Tensor) -> None:
    module_name, _, attr = key.rpartition(".")
    module = model.get_submodule(module_name)
    old = getattr(module, attr)
    if isinstance(old, torch.nn.Parameter):
        setattr(module, attr, torch.nn.Parameter(tensor, requires_grad=old.requires_grad))
    else:
        module.register_buffer(attr, tensor)


def load_state_into(
    model: InternVLChatModel, files: list[Path], dtype: torch.dtype, device: torch.device | str | Callable
) -> None:
    """Assign every tensor of ``files`` to ``model`` (built on meta), checking names and shapes.

    ``device`` is a device, or a function from state-dict key to device (a multi-GPU split).
    """
    where = device if callable(device) else (lambda _key: device)
    expected = dict(model.state_dict(keep_vars=True))
    seen: set[str] = set()
    for key, file, tensor in iter_tensors(files):
        if key not in expected:
            raise CheckpointError(
                f"{file}: unexpected tensor {key!r} (not part of the {model.config.llm_config.architecture} "
                "InternVL model described by config.json)"
            )
        want = tuple(expected[key].shape)
        if tuple(tensor.shape) != want:
            raise CheckpointError(f"{file}: tensor {key!r} has shape {tuple(tensor.shape)}, config.json implies {want}")
        target = dtype if tensor.is_floating_point() else tensor.dtype
        _set_param(model, key, tensor.to(device=where(key), dtype=target))
        seen.add(key)
    missing = sorted(set(expected) - seen)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckpointError(
            f"{files[0].parent}: missing tensors {', '.join(missing[:5])}{more}; the checkpoint is incomplete"
        )


def checkpoint_dtype(config: ChatConfig) -> torch.dtype:
    name = config.torch_dtype or "bfloat16"
    return getattr(torch, name) if isinstance(name, str) and hasattr(torch, name) else torch.bfloat16


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
                   "kaiming_normal_", "xavier_uniform_", "xavier_normal_")
_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _no_init():
    """Skip the modules' random initialisation while building on the meta device: the checkpoint overwrites
    every tensor, and initialising meta tensors goes through torch's reference kernels, whose first use
    imports torch._dynamo (about 1 s of a CLI command's start-up). One load at a time patches ``torch.nn.init``:
    two interleaved ones (threads of a server, say) could otherwise save each other's no-ops as the originals
    and leave them in place for good."""
    with _INIT_LOCK:
        saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
        for name in _INIT_FUNCTIONS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        try:
            yield
        finally:
            for name, fn in saved.items():
                setattr(torch.nn.init, name, fn)


def load_model(
    path: str | os.PathLike, *, device: str | torch.device | Sequence = "cpu", dtype: torch.dtype | None = None
) -> tuple[InternVLChatModel, Path]:
    """Build the model described by ``path/config.json`` and load its weights. Returns (model, directory).

    ``device`` may name several devices ("cuda:0,cuda:1" or a list): the decoder layers are then split
    across them (:mod:`tessera.parallel`).
    """
    ckpt = resolve(path)
    try:
        config = ChatConfig.from_file(ckpt)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    dtype = dtype or checkpoint_dtype(config)
    with torch.device("meta"), _no_init():
        model = InternVLChatModel(config)
    devices = parse_devices(device)
    target = device_fn(config, devices) if len(devices) > 1 else devices[0]
    load_state_into(model, shard_files(ckpt), dtype, target)
    model.eval()
    return model, ckpt


def _shard_plan(state: dict[str, torch.Tensor], max_shard_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    return shards


def save_model(
    model: InternVLChatModel,
    out_dir: str | os.PathLike,
    *,
    source_dir: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.bfloat16,
    max_shard_size: int = 5 * 1024**3,
) -> Path:
    """Write ``model`` in the official layout: config.json, (sharded) safetensors + index, aux files.

    Files are written to a temporary directory next to ``out_dir`` and renamed into place, so a crash never
    leaves a half-written checkpoint behind.
    """
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp-save")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if source_dir is not None:
        for item in Path(source_dir).iterdir():
            if item.is_file() and (item.name in AUX_NAMES or item.suffix in AUX_SUFFIXES):
                shutil.copy2(item, tmp / item.name)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    config = model.config
    config.torch_dtype = str(dtype).removeprefix("torch.")
    config.save(tmp / "config.json")
    if not (tmp / "generation_config.json").exists():
        (tmp / "generation_config.json").write_text(json.dumps({"_from_model_config": True}, indent=2) + "\n")
    shards = _shard_plan(state, max_shard_size)
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(tmp / SINGLE_NAME), metadata=meta)
    else:
        weight_map = {}
        for i, shard in enumerate(shards, start=1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(tmp / name), metadata=meta)
            weight_map.update(dict.fromkeys(shard, name))
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    if out.exists():
        old = out.with_name(out.name + ".tmp-old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
    return out
