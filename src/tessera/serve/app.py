"""The FastAPI application: OpenAI-compatible chat completions over the batching engine, plus the web page.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /v1/tile_grid``,
``GET /health``, ``GET /`` (the web page) and ``/static/*``. Request flow: parse and check the body on the
event loop (cheap) -> load images and build the prompt in the thread pool -> queue on the
:class:`~tessera.serve.engine.Engine` -> stream its outputs back (SSE) or collect them.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from tessera import preprocess
from tessera.vlm import VLM, StepOutput

from . import responses
from .conversation import build_conversation
from .engine import Engine, EngineStopped, Job, QueueFull
from .errors import APIError, install_handlers
from .prepare import check_request_fields, context_length, prepare_request, server_max_tiles
from .schema import ChatCompletionRequest, parse_chat_request
from .settings import ServeSettings

STATIC = Path(__file__).parent / "static"
DISCONNECT_POLL_S = 0.25
BIG_BODY = 1 << 20  # bytes


def served_model_name(vlm: VLM, settings: ServeSettings) -> str:
    if settings.model_name:
        return settings.model_name
    return vlm.path.name if vlm.path is not None else "tessera"


def create_app(vlm: VLM, settings: ServeSettings | None = None) -> FastAPI:
    """Build the app around a loaded model. The engine thread starts and stops with the app's lifespan."""
    settings = settings or ServeSettings()
    max_len = context_length(vlm, settings) if settings.batching == "continuous" else None
    engine = Engine(vlm, max_batch=settings.max_batch, max_queue=settings.max_queue, max_len=max_len)
    model_name = served_model_name(vlm, settings)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    app = FastAPI(title="tessera", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.state.settings = settings
    app.state.model_name = model_name
    install_handlers(app)

    def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
            raise APIError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    auth = [Depends(require_key)]

    @app.get("/health")
    async def health():
        ok = engine.alive
        body = {
            "status": "ok" if ok else "unavailable",
            "model": model_name,
            "waiting": engine.waiting,
            "running": engine.running,
            "batches": engine.stats.batches,
            "largest_batch": engine.stats.largest_batch,
            "batching": settings.batching,
            "max_tiles": server_max_tiles(vlm, settings),
            "max_images": settings.max_images,
            "auth": settings.api_key is not None,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    def model_card() -> dict:
        return {"id": model_name, "object": "model", "created": created, "owned_by": "tessera",
                "context_length": context_length(vlm, settings)}

    @app.get("/v1/models", dependencies=auth)
    async def list_models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}", dependencies=auth)
    async def get_model(model_id: str):
        if model_id != model_name:
            raise _unknown_model(model_id, model_name, "model_id")
        return model_card()

    @app.get("/v1/tile_grid", dependencies=auth)
    async def tile_grid(
        width: int = Query(ge=1, le=1_000_000),
        height: int = Query(ge=1, le=1_000_000),
        max_tiles: int | None = Query(default=None, ge=1),
    ):
        """The tile grid an image of ``width x height`` gets (what the web page draws over its preview)."""
        limit = server_max_tiles(vlm, settings)
        if max_tiles is not None and max_tiles > limit:
            raise APIError(400, f"max_tiles must be between 1 and {limit} on this server", param="max_tiles",
                           code="invalid_value")
        cfg = vlm.config
        n = max_tiles or limit
        cols, rows = preprocess.tile_grid(width, height, min_tiles=min(cfg.min_dynamic_patch, n), max_tiles=n,
                                          image_size=cfg.image_size)
        thumbnail = bool(cfg.use_thumbnail and cols * rows > 1)
        tiles = cols * rows + int(thumbnail)
        return {"cols": cols, "rows": rows, "thumbnail": thumbnail, "tiles": tiles, "max_tiles": n,
                "image_size": cfg.image_size, "image_tokens": tiles * cfg.num_image_token}

    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat_completions(request: Request):
        body = await _read_body(request, settings.max_body_bytes)
        # pydantic parses a few MB of base64 in tens of ms: big bodies go to the thread pool
        req = await run_in_threadpool(parse_chat_request, body) if len(body) > BIG_BODY else parse_chat_request(body)
        if req.model is not None and req.model != model_name:
            raise _unknown_model(req.model, model_name, "model")
        check_request_fields(vlm, settings, req)  # cheap checks first; prepare_request repeats them
        conv = build_conversation(req.messages)
        prepared = await run_in_threadpool(prepare_request, vlm, settings, req, conv)
        try:
            job = engine.submit(prepared, settings.request_timeout)
        except QueueFull as e:
            raise APIError(429, f"the server is busy ({e}); retry later", code="queue_full") from None
        except EngineStopped as e:
            raise APIError(503, str(e), code="unavailable", type="server_error") from None
        if req.stream:
            return StreamingResponse(_stream(job, req, model_name), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await _collect(job, request, model_name)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _unknown_model(asked: str, served: str, param: str) -> APIError:
    return APIError(404, f"the model {asked!r} does not exist on this server; it serves {served!r} "
                    "(see GET /v1/models)", param=param, code="model_not_found")


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise APIError(413, f"the request body is {int(length)} bytes, more than the {limit}-byte limit",
                       code="request_too_large")
    chunks, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise APIError(413, f"the request body is more than the {limit}-byte limit", code="request_too_large")
        chunks.append(piece)
    return b"".join(chunks)


def _timeout_error() -> APIError:
    return APIError(504, "the request took longer than the server's request timeout; ask for fewer tokens or "
                    "retry when the server is less busy", code="timeout", type="server_error")


async def _outputs(job: Job, request: Request | None = None) -> AsyncIterator[StepOutput]:
    """The job's outputs until it finishes. Raises :class:`APIError` on timeout or model failure; with
    ``request`` it also polls for a client disconnect and cancels the job (streams are cancelled by
    Starlette instead, which lands in the ``finally``)."""
    next_poll = time.monotonic() + DISCONNECT_POLL_S
    try:
        while True:
            if request is not None and time.monotonic() >= next_poll:
                if await request.is_disconnected():
                    return
                next_poll = time.monotonic() + DISCONNECT_POLL_S
            remaining = job.deadline - time.monotonic()
            wait = min(remaining + 1.0, DISCONNECT_POLL_S) if request is not None else remaining + 1.0
            try:
                item = await asyncio.wait_for(job.queue.get(), timeout=max(wait, 0.01))
            except asyncio.TimeoutError:
                if job.expired():
                    raise _timeout_error() from None
                continue
            if isinstance(item, BaseException):
                if isinstance(item, EngineStopped):
                    raise APIError(503, str(item), code="unavailable", type="server_error")
                raise APIError(500, f"the model failed while decoding ({type(item).__name__}: {item})",
                               code="internal_error", type="server_error")
            if item.finished and item.finish_reason == "cancelled" and job.expired():
                raise _timeout_error()
            yield item
            if item.finished:
                return
    finally:
        job.cancel()  # no-op for a finished row; frees the row if the client left or we timed out


async def _collect(job: Job, request: Request, model_name: str) -> JSONResponse:
    text, finish, tokens = [], "stop", 0
    async for out in _outputs(job, request):
        text.append(out.text)
        tokens = max(tokens, out.num_tokens)
        if out.finished:
            finish = out.finish_reason or "stop"
    body = responses.completion(responses.completion_id(), model_name, "".join(text), finish,
                                job.prompt_tokens, tokens)
    return JSONResponse(body)


async def _stream(job: Job, req: ChatCompletionRequest, model_name: str) -> AsyncIterator[bytes]:
    cid, created = responses.completion_id(), int(time.time())
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    yield responses.sse(responses.chunk(cid, model_name, created, {"role": "assistant", "content": ""}))
    tokens = 0
    try:
        async for out in _outputs(job):
            tokens = max(tokens, out.num_tokens)
            if out.text:
                yield responses.sse(responses.chunk(cid, model_name, created, {"content": out.text}))
            if out.finished:
                yield responses.sse(responses.chunk(cid, model_name, created, {}, out.finish_reason or "stop"))
    except APIError as e:  # headers are gone already: report in-band, as OpenAI does
        yield responses.sse(e.body())
    else:
        if include_usage:
            yield responses.sse(responses.chunk(cid, model_name, created, {}, include_choice=False,
                                                usage_=responses.usage(job.prompt_tokens, tokens)))
    yield responses.sse("[DONE]")
