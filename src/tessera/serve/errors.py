"""OpenAI-style errors: every failure answers ``{"error": {"message", "type", "param", "code"}}``.

Handlers are installed for our own :class:`APIError`, for FastAPI's validation errors (query parameters),
for Starlette's HTTP errors (404 route, 405 method) and, as a last resort, for any other exception (500,
which bad input must never reach: the tests check that).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tessera import images

log = logging.getLogger("tessera.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}


class APIError(Exception):
    """An error answered to the client with ``status`` and an OpenAI-style body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


_IMAGE_CODES = {
    images.ImageNotFound: "image_not_found",
    images.ImageTooLarge: "image_too_large",
    images.EmptyImage: "invalid_image",
    images.TooManyImages: "too_many_images",
    images.URLNotAllowed: "url_not_allowed",
    images.SourceNotAllowed: "source_not_allowed",
    images.ImageFetchError: "image_fetch_failed",
    images.InvalidImage: "invalid_image",
}


def image_error(err: images.ImageError, param: str | None) -> APIError:
    """Map an :class:`tessera.images.ImageError` to a 4xx: a URL that cannot be downloaded is the
    client's input too, so the library's 502 hint becomes 400 here."""
    code = next((c for cls, c in _IMAGE_CODES.items() if isinstance(err, cls)), "invalid_image")
    status = err.http_status if err.http_status < 500 else 400
    return APIError(status, f"{param}: {err}" if param else str(err), param=param, code=code)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        err = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "body", "path")]
        param = ".".join(loc) or None
        msg = f"{param}: {err.get('msg', 'invalid value')}" if param else str(err.get("msg", "invalid request"))
        return APIError(400, msg, param=param, code="invalid_value").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            msg = f"no route {request.method} {request.url.path}; see GET /v1/models, POST /v1/chat/completions"
        elif exc.status_code == 405:
            msg = f"method {request.method} is not allowed on {request.url.path}"
        else:
            msg = str(exc.detail)
        return APIError(exc.status_code, msg, code=None).response()

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        log.exception("unexpected error while serving a request")
        return APIError(500, f"internal server error ({type(exc).__name__}); see the server log",
                        code="internal_error").response()
