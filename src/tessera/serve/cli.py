"""``tessera serve``: the OpenAI-compatible HTTP server and web page.

``register(subparsers)`` adds the ``serve`` sub-command to the main CLI; ``run(args)`` loads the model and
serves until interrupted. Heavy imports (torch, FastAPI, uvicorn) happen in ``run`` so ``tessera --help``
stays fast. Also runnable alone: ``python -m tessera.serve --model PATH``.
"""

from __future__ import annotations

import argparse
import logging
import sys

DESCRIPTION = ("Serve a model over an OpenAI-compatible HTTP API (POST /v1/chat/completions, GET /v1/models, "
               "GET /health) with a web page at /. Requests are decoded in dynamic batches by one model thread.")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--model", default=None, metavar="PATH_OR_ID",
                   help="checkpoint directory or Hugging Face repo id (default: the bundled model)")
    p.add_argument("--model-name", default=None, help="model id clients send (default: the checkpoint's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on /v1/* (default: $TESSERA_API_KEY if set)")
    p.add_argument("--max-batch", type=_positive_int, default=8, metavar="N",
                   help="requests decoded together (default: 8)")
    p.add_argument("--batching", choices=("continuous", "static"), default="continuous",
                   help="continuous: requests join and leave the running batch between decode steps (one "
                        "static cache of max-batch x max-model-len tokens); static: batch after batch "
                        "(default: continuous)")
    p.add_argument("--max-model-len", type=_positive_int, default=None, metavar="N",
                   help="tokens per request, prompt + answer, with continuous batching "
                        "(default: the model's context, at most 8192)")
    p.add_argument("--max-queue", type=_positive_int, default=64, metavar="N",
                   help="requests waiting for a batch before new ones get 429 (default: 64)")
    p.add_argument("--max-tiles", type=_positive_int, default=None, metavar="N",
                   help="tiles per image, default and upper bound of the per-request max_tiles "
                        "(default: the model's max_dynamic_patch)")
    p.add_argument("--max-images", type=_positive_int, default=16, metavar="N",
                   help="images per request, all turns together (default: 16)")
    p.add_argument("--request-timeout", type=_positive_float, default=300.0, metavar="S",
                   help="seconds a request may take from arrival to last token (default: 300)")
    p.add_argument("--allow-local-files", action="store_true",
                   help="let requests read images from this machine's files (paths, file://); off by default")
    p.add_argument("--allow-private-urls", action="store_true",
                   help="let image URLs reach loopback/private/link-local addresses; off by default (SSRF)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... or auto (default: auto)")
    p.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: the checkpoint's)")
    p.add_argument("--compile", action="store_true",
                   help="compiled decode steps (torch.compile, CUDA graphs on GPU); the first requests wait for "
                        "the compilation")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``serve`` to the main CLI's sub-parsers; dispatch with ``args.func(args)`` or :func:`run`."""
    p = subparsers.add_parser("serve", help="serve the model over an OpenAI-compatible HTTP API and a web page",
                              description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Load the model and serve until Ctrl-C. Returns the process exit code."""
    import os

    import uvicorn

    import tessera
    from tessera.checkpoint import CheckpointError

    from .app import create_app
    from .prepare import DEFAULT_MAX_MODEL_LEN
    from .settings import ServeSettings

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = ServeSettings(
            model_name=args.model_name,
            api_key=args.api_key or os.environ.get("TESSERA_API_KEY") or None,
            max_batch=args.max_batch,
            batching=args.batching,
            max_model_len=args.max_model_len,
            max_queue=args.max_queue,
            request_timeout=args.request_timeout,
            max_tiles=args.max_tiles,
            max_images=args.max_images,
            allow_local_files=args.allow_local_files,
            allow_private_urls=args.allow_private_urls,
        )
    except ValueError as e:
        print(f"tessera serve: {e}", file=sys.stderr)
        return 2
    try:
        vlm = tessera.load(args.model, device=args.device, dtype=args.dtype, compile=args.compile,
                           compile_len=args.max_model_len or DEFAULT_MAX_MODEL_LEN)
    except (OSError, ValueError, CheckpointError) as e:
        print(f"tessera serve: cannot load the model {args.model or '(bundled)'}: {e}", file=sys.stderr)
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        print(f"tessera serve: warning: listening on {args.host} without --api-key: anyone who can reach this "
              "port can use the model" + (" and read local image files" if args.allow_local_files else ""),
              file=sys.stderr)
    app = create_app(vlm, settings)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"tessera serve: {app.state.model_name} on {vlm.device} ({vlm.dtype}); web page and API at "
          f"http://{shown}:{args.port}/", file=sys.stderr)
    # graceful shutdown: open streams get 10 s to finish, then the engine cancels what is left
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=10)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="python -m tessera.serve", description=DESCRIPTION))
    return run(parser.parse_args(argv))
