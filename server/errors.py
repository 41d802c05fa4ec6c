"""The API's error answers: one JSON shape, `{"error": code, "message": text, ...}`.

`ApiError` is raised by routes and dependencies; `install` makes the app answer it, and
request validation errors (422), in that shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ApiError(Exception):
    """An error answer: HTTP status, a stable code, a message for people, extra fields."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> JSONResponse:
        """The JSON answer."""
        return JSONResponse(
            status_code=self.status,
            content={"error": self.error, "message": self.message, **self.extra},
            headers=self.headers,
        )


def install(app: FastAPI) -> None:
    """Answer `ApiError` and request validation errors with the JSON error shape."""

    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"where": ".".join(str(part) for part in error["loc"]), "problem": error["msg"]}
            for error in exc.errors()
        ]
        first = details[0] if details else {"where": "request", "problem": "invalid"}
        return ApiError(
            422,
            "invalid_request",
            f"{first['where']}: {first['problem']}",
            extra={"details": jsonable_encoder(details)},
        ).response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
