"""A parsed API request -> a :class:`tessera.vlm.Request` ready for the engine, with every limit checked.

Runs in the thread pool (image download, decoding and tiling are CPU and I/O work that must not block the
event loop or the model thread). Every failure is a 4xx :class:`APIError` naming the offending field.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from tessera import images
from tessera.generation import SamplingParams
from tessera.vlm import VLM, Request

from .conversation import Conversation
from .errors import APIError, image_error
from .schema import ChatCompletionRequest
from .settings import ServeSettings

MAX_STOPS = 16
MAX_STOP_CHARS = 256


def server_max_tiles(vlm: VLM, settings: ServeSettings) -> int:
    """Tiles per image this server allows: ``--max-tiles``, else the model's own setting (1 when the model
    has no dynamic resolution)."""
    if not vlm.config.dynamic_image_size:
        return 1
    return settings.max_tiles or vlm.max_tiles


DEFAULT_MAX_MODEL_LEN = 8192  # continuous batching: cache slots per row unless --max-model-len says otherwise


def context_length(vlm: VLM, settings: ServeSettings | None = None) -> int:
    """Tokens one request may use (prompt + answer): the model's context, or with continuous batching the
    length of a cache row (``max_model_len``, by default the context capped at 8192)."""
    model = int(vlm.config.llm_config.max_position_embeddings)
    if settings is None or settings.batching != "continuous":
        return model
    return min(model, settings.max_model_len or DEFAULT_MAX_MODEL_LEN)


def check_request_fields(vlm: VLM, settings: ServeSettings, req: ChatCompletionRequest) -> None:
    """Cheap checks that need no image and no tokenizer (run before any heavy work)."""
    name, value = _max_tokens_field(req)
    if value is not None and not 1 <= value <= context_length(vlm, settings):
        raise APIError(400, f"{name} must be between 1 and the model's context length ({context_length(vlm, settings)}), "
                       f"got {value}", param=name, code="invalid_value")
    limit = server_max_tiles(vlm, settings)
    if req.max_tiles is not None and req.max_tiles > limit:
        raise APIError(400, f"max_tiles must be between 1 and {limit} on this server, got {req.max_tiles}",
                       param="max_tiles", code="invalid_value")
    stops = _stops(req)
    if len(stops) > MAX_STOPS or any(len(s) > MAX_STOP_CHARS for s in stops):
        raise APIError(400, f"stop: at most {MAX_STOPS} strings of at most {MAX_STOP_CHARS} characters each",
                       param="stop", code="invalid_value")


def _max_tokens_field(req: ChatCompletionRequest) -> tuple[str, int | None]:
    if req.max_completion_tokens is not None:
        return "max_completion_tokens", req.max_completion_tokens
    return "max_tokens", req.max_tokens


def _stops(req: ChatCompletionRequest) -> list[str]:
    return [req.stop] if isinstance(req.stop, str) else list(req.stop or [])


def load_images(conv: Conversation, settings: ServeSettings) -> list[Image.Image | np.ndarray]:
    """Fetch/decode every image of the conversation under the server's source and size limits (JPEGs come
    back as RGB arrays, decoded straight from the file: :func:`tessera.images.load_pixels`)."""
    try:
        images.check_image_count(len(conv.images), settings.max_images)
    except images.TooManyImages as e:
        raise image_error(e, "messages") from None
    out = []
    for ref in conv.images:
        try:
            out.append(
                images.load_pixels(
                    ref.url,
                    max_pixels=settings.max_image_pixels,
                    allow_urls=True,
                    allow_local_files=settings.allow_local_files,
                    timeout=settings.fetch_timeout,
                    max_bytes=settings.max_image_bytes,
                    allow_private_urls=settings.allow_private_urls,
                )
            )
        except images.ImageError as e:
            raise image_error(e, ref.param) from None
    return out


def prepare_request(
    vlm: VLM, settings: ServeSettings, req: ChatCompletionRequest, conv: Conversation
) -> Request:
    """Load images, build the prompt, and fix the decoding budget against the context length."""
    check_request_fields(vlm, settings, req)
    pil_images = load_images(conv, settings)
    try:
        params = SamplingParams(
            max_new_tokens=1,  # set below, once the prompt length is known
            temperature=req.temperature if req.temperature is not None else 0.0,
            top_p=req.top_p if req.top_p is not None else 1.0,
            top_k=req.top_k or 0,
            repetition_penalty=req.repetition_penalty if req.repetition_penalty is not None else 1.0,
            seed=req.seed,
        )
    except ValueError as e:
        raise APIError(400, str(e), code="invalid_value") from None
    try:
        request = vlm.prepare(
            conv.question,
            pil_images or None,
            history=conv.history,
            system_message=conv.system_message,
            max_tiles=req.max_tiles or server_max_tiles(vlm, settings),
            params=params,
            stop=[s for s in _stops(req) if s],
        )
    except images.ImageError as e:
        raise image_error(e, "messages") from None
    except ValueError as e:  # placeholders that do not match the images
        raise APIError(400, f"cannot build the prompt: {e}", param="messages", code="invalid_value") from None
    _check_image_tokens(vlm, request)
    _fit_context(vlm, settings, req, request)
    return request


def _check_image_tokens(vlm: VLM, request: Request) -> None:
    expected = sum(request.num_patches_list) * vlm.config.num_image_token
    found = request.input_ids.count(vlm.model.img_context_token_id)
    if found != expected:
        raise APIError(400, "the messages contain image special tokens (<IMG_CONTEXT>, <img>, </img>) as text; "
                       "send images as image_url content parts", param="messages", code="invalid_value")


def _fit_context(vlm: VLM, settings: ServeSettings, req: ChatCompletionRequest, request: Request) -> None:
    context = context_length(vlm, settings)
    prompt = len(request.input_ids)
    name, wanted = _max_tokens_field(req)
    if prompt >= context:
        raise APIError(400, f"this model's maximum context length is {context} tokens, but the messages "
                       f"(images included) take {prompt} tokens; shorten the conversation, send fewer "
                       "images or lower max_tiles", param="messages", code="context_length_exceeded")
    room = context - prompt
    if wanted is not None and wanted > room:
        raise APIError(400, f"this model's maximum context length is {context} tokens: the messages take "
                       f"{prompt} and {name}={wanted} asks for {wanted} more; lower {name} to at most {room}",
                       param=name, code="context_length_exceeded")
    request.params.max_new_tokens = wanted if wanted is not None else min(settings.default_max_tokens, room)
