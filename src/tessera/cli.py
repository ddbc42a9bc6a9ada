"""The ``tessera`` command: thin subcommands over the Python API.

``tessera chat``, ``tessera info`` and ``tessera bench`` live here; ``serve``, ``train`` and ``eval``
register themselves from their packages. Errors a user can fix (a missing file, a bad image, an unknown
model) are one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

SUBPACKAGES = ("tessera.serve.cli", "tessera.train.cli", "tessera.eval.cli")


class UserError(Exception):
    """An error whose message is all the user needs."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .images import ImageError

    return (UserError, CheckpointError, ConfigError, ImageError, FileNotFoundError, ValueError)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="checkpoint directory or Hugging Face repo id (default: bundled model)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: the checkpoint's)")


def _load(args):
    import tessera

    return tessera.load(args.model, device=args.device, dtype=args.dtype, compile=getattr(args, "compile", False))


# ---------------------------------------------------------------------------------------------- chat
def _register_chat(sub) -> None:
    p = sub.add_parser("chat", help="ask about images (one-shot with a question, interactive without)")
    _add_model_args(p)
    p.add_argument("question", nargs="?", help="the question; omit it for an interactive session")
    p.add_argument("--image", action="append", default=[], help="image path or URL (repeatable)")
    p.add_argument("--video", default=None, help="video file (frames sampled uniformly, one tile each)")
    p.add_argument("--num-segments", type=int, default=8, help="frames to sample from --video")
    p.add_argument("--max-tiles", type=int, default=None, help="max tiles per image (default: the checkpoint's)")
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--system", default=None, help="override the system message")
    p.add_argument("--verbose", "-v", action="store_true", help="print tile grid, token counts and speed")
    p.add_argument("--compile", action="store_true",
                   help="compiled decode (CUDA graphs on GPU): the first answer waits for the compilation, the "
                        "rest decode several times faster; for interactive sessions")
    p.set_defaults(func=_run_chat)


def _check_files(paths) -> None:
    for path in paths:
        if "://" not in path and not path.startswith("data:") and not Path(path).exists():
            raise UserError(f"no such file: {path}")


def _answer(vlm, args, question: str, images: list, history: list) -> str:
    from .generation import SamplingParams

    out = sys.stdout
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    start = time.perf_counter()
    request = vlm.prepare(
        question, images or None, video=args.video if not history else None, num_segments=args.num_segments,
        history=history, system_message=args.system, max_tiles=args.max_tiles, params=params,
    )
    first = None
    pieces = []
    count = 0
    for outputs in vlm.run([request]):
        for o in outputs:
            if first is None:
                first = time.perf_counter()
            count = o.num_tokens
            if o.text:
                pieces.append(o.text)
                out.write(o.text)
                out.flush()
    out.write("\n")
    end = time.perf_counter()
    if args.verbose:
        _verbose(vlm, args, images, request, start, first or end, end, count)
    answer = "".join(pieces)
    history.append((request.question, answer))
    return answer


def _verbose(vlm, args, images, request, start, first, end, count) -> None:
    from .images import load_image
    from .preprocess import tile_grid

    max_tiles = args.max_tiles or vlm.max_tiles
    for src in images:
        img = load_image(src)
        cols, rows = tile_grid(img.width, img.height, min_tiles=vlm.config.min_dynamic_patch,
                               max_tiles=max_tiles, image_size=vlm.config.image_size)
        thumb = " + thumbnail" if cols * rows > 1 and vlm.config.use_thumbnail else ""
        print(f"[{src}: {img.width}x{img.height} -> {cols}x{rows} tiles{thumb}]", file=sys.stderr)
    decode = (end - first) / max(count - 1, 1)
    print(
        f"[prompt {len(request.input_ids)} tokens ({sum(request.num_patches_list)} tiles), {count} new tokens, "
        f"time to first token {1000 * (first - start):.0f} ms, {1 / decode if count > 1 else 0:.1f} tok/s]",
        file=sys.stderr,
    )


def _run_chat(args) -> int:
    _check_files(args.image + ([args.video] if args.video else []))
    vlm = _load(args)
    history: list = []
    if args.question:
        _answer(vlm, args, args.question, list(args.image), history)
        return 0
    return _interactive(vlm, args)


def _interactive(vlm, args) -> int:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    images: list = list(args.image)
    new_images = len(images)
    history: list = []
    print("tessera chat: type a question. Commands: /image PATH (attach), /reset, /quit", file=sys.stderr)
    while True:
        try:
            line = input(">>> ").strip()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line == "/reset":
            images, history, new_images = [], [], 0
            print("[conversation cleared]", file=sys.stderr)
            continue
        if line.startswith("/image"):
            path = line[len("/image"):].strip()
            try:
                _check_files([path])
            except UserError as exc:
                print(f"error: {exc}", file=sys.stderr)
                continue
            images.append(path)
            new_images += 1
            print(f"[attached {path}]", file=sys.stderr)
            continue
        question = line
        if history and new_images:  # later turns name their new images explicitly
            question = "<image>\n" * new_images + line
        try:
            _answer(vlm, args, question, images, history)
        except _user_errors() as exc:
            print(f"error: {exc}", file=sys.stderr)
            if new_images and not history:
                images, new_images = [], 0
            continue
        new_images = 0


# ---------------------------------------------------------------------------------------------- info
def _register_info(sub) -> None:
    p = sub.add_parser("info", help="print a checkpoint's architecture, sizes, template and tile settings")
    p.add_argument("--model", default=None, help="checkpoint directory, repo id or preset name")
    p.set_defaults(func=_run_info)


def _run_info(args) -> int:
    import torch

    from .checkpoint import resolve
    from .config import PRESETS, ChatConfig
    from .models.internvl import InternVLChatModel
    from .vlm import default_model_path

    source = args.model or str(default_model_path())
    cfg = ChatConfig.from_name(source) if source in PRESETS else ChatConfig.from_file(resolve(source))
    with torch.device("meta"):
        model = InternVLChatModel(cfg)

    def count(m) -> str:
        n = sum(p.numel() for p in m.parameters())
        return f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"

    v, llm = cfg.vision_config, cfg.llm_config
    rows = [
        ("model", source),
        ("parameters", f"{count(model)} (vision {count(model.vision_model)}, mlp1 {count(model.mlp1)}, "
                       f"llm {count(model.language_model)})"),
        ("vision", f"InternViT {v.num_hidden_layers} layers, hidden {v.hidden_size}, {v.num_attention_heads} heads, "
                   f"{v.norm_type}, qk_norm={v.qk_normalization}, patch {v.patch_size}"),
        ("llm", f"{llm.architecture} {llm.num_hidden_layers} layers, hidden {llm.hidden_size}, "
                f"{llm.num_attention_heads}/{llm.num_key_value_heads} heads, vocab {llm.vocab_size}, "
                f"rope theta {llm.rope_theta:g} {(llm.rope_scaling or {}).get('type', '')}"),
        ("template", cfg.template + (f" (system message: {cfg.system_message!r})" if cfg.system_message else "")),
        ("tiles", f"{cfg.image_size} px, {cfg.num_image_token} tokens/tile, {cfg.min_dynamic_patch}-"
                  f"{cfg.max_dynamic_patch} tiles, thumbnail={cfg.use_thumbnail}, dynamic={cfg.dynamic_image_size}, "
                  f"pixel shuffle {cfg.ps_version}, select_layer {cfg.select_layer}"),
        ("dtype", cfg.torch_dtype),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


# ---------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="tessera", description="InternVL 1.5 in plain PyTorch.")
    parser.add_argument("--version", action="version", version=f"tessera {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _register_chat(sub)
    _register_info(sub)
    from .bench import register as register_bench

    register_bench(sub)
    for name in SUBPACKAGES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # an optional extra is not installed
            missing = sub.add_parser(name.split(".")[1], help=f"(unavailable: {exc})")
            missing.set_defaults(func=lambda _a, e=exc: _missing(e))
            continue
        module.register(sub)
        _RUNNERS[name.split(".")[1]] = module.run
    return parser


_RUNNERS: dict = {}


def _missing(exc: Exception) -> int:
    print(f"error: {exc}. Install the extras: pip install 'tessera[all]'", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func = getattr(args, "func", None) or _RUNNERS[args.command]
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
