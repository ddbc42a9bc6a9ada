"""The request body of ``POST /v1/chat/completions`` (the OpenAI schema, the parts tessera supports).

Parsed in pydantic's strict JSON mode: a string where a number belongs is an error, not a coercion.
Unknown top-level fields are ignored (clients send many optional ones); fields whose non-default values
tessera cannot honour (``n > 1``, tools, logprobs) are refused with a message instead of being ignored.
:func:`parse_chat_request` turns every parse failure into a 400 :class:`APIError` naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import APIError

_STRICT = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    model_config = _STRICT
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    model_config = _STRICT
    type: Literal["image_url"]
    image_url: ImageURL | str


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = _STRICT
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    # tessera extensions
    max_tiles: int | None = Field(default=None, ge=1)
    top_k: int | None = Field(default=None, ge=0)
    repetition_penalty: float | None = Field(default=None, gt=0)
    # accepted by the OpenAI schema but not supported: refused unless left at their defaults
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    logprobs: bool | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: dict[str, Any] | None = None


_BRANCH_NAMES = {"str", "int", "float", "bool", "none", "ImageURL", "TextPart", "ImagePart"}


def _param(loc: tuple) -> str | None:
    """Dotted field path of a pydantic error location, without the union-branch tags pydantic inserts
    (``str``, ``list[...]``, ``tagged-union[...]`` and the discriminator value after a tagged-union index)."""
    parts: list[str] = []
    tagged = False  # the element after a tagged-union's list index is the tag value
    for i, p in enumerate(loc):
        if isinstance(p, str) and ("[" in p or p in _BRANCH_NAMES):
            tagged = tagged or p.startswith("list[tagged-union[")
            continue
        if tagged and isinstance(p, str) and i > 0 and isinstance(loc[i - 1], int):
            tagged = False
            continue
        parts.append(str(p))
    return ".".join(parts) or None


def _message(err: dict) -> str:
    if err["type"] == "json_invalid":
        return f"the request body is not valid JSON ({err.get('ctx', {}).get('error', err['msg'])})"
    param = _param(err["loc"])
    msg = err["msg"]
    if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        if not param:
            return "the request body must be a JSON object"
        msg = "Input should be a JSON object"
    if err["type"] == "union_tag_invalid":
        msg = f"unknown content part type {err.get('input', {}).get('type')!r}; use 'text' or 'image_url'"
    elif err["type"] == "union_tag_not_found":
        msg = "content parts need a 'type' field ('text' or 'image_url')"
    elif err["type"] == "literal_error" and param and param.endswith("role"):
        msg = f"unsupported role {err.get('input')!r}; use 'system', 'user' or 'assistant'"
    return f"{param}: {msg}" if param else msg


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """Validate a raw JSON body; raises a 400 :class:`APIError` naming the first problem."""
    try:
        req = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        # A value that fits no branch of a union gets one error per branch: report the deepest path, and
        # join the messages of the branches that failed at that same path ("a string or an array").
        depth = max(len(_param(err["loc"]) or "") for err in errors)
        errors = [err for err in errors if len(_param(err["loc"]) or "") == depth]
        first = errors[0]
        message = _message(first)
        for other in errors[1:3]:
            extra = other["msg"]
            if extra not in message and other["type"] not in ("union_tag_invalid", "union_tag_not_found"):
                message += f", or {extra[0].lower()}{extra[1:]}"
        code = "invalid_json" if first["type"] == "json_invalid" else "invalid_value"
        raise APIError(400, message, param=_param(first["loc"]), code=code) from None
    if req.n != 1:
        raise APIError(400, f"n={req.n} is not supported: tessera returns one choice per request; send n=1 "
                       "or several requests", param="n", code="unsupported_value")
    for name in ("tools", "functions"):
        if getattr(req, name):
            raise APIError(400, f"{name} (function calling) is not supported by this server", param=name,
                           code="unsupported_value")
    if req.logprobs:
        raise APIError(400, "logprobs are not supported by this server", param="logprobs", code="unsupported_value")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(req, name):
            raise APIError(400, f"{name} is not supported; use the repetition_penalty extension (> 1 penalises "
                           "repeats)", param=name, code="unsupported_value")
    if req.response_format and req.response_format.get("type") not in (None, "text"):
        raise APIError(400, "only response_format {'type': 'text'} is supported", param="response_format",
                       code="unsupported_value")
    return req
