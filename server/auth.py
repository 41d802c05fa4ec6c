"""Bearer-token guard of the write endpoints (and the audit log).

The token comes from `ServerSettings.api_token`, read once at start. Without one the guarded
endpoints answer 403; a missing or wrong token answers 401 with `WWW-Authenticate: Bearer`.
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.errors import ApiError
from taktline.model.secrets import SecretError, SecretRef

_bearer = HTTPBearer(auto_error=False, description="The server's api_token.")


class TokenError(RuntimeError):
    """The configured token cannot be read, or is empty."""


def read_token(secret: SecretRef | None) -> str | None:
    """The configured token, or None when writes are not configured."""
    if secret is None:
        return None
    try:
        token = secret.reveal()
    except SecretError as exc:
        raise TokenError(f"api_token: {exc}") from None
    if not token:
        raise TokenError(f"api_token: the secret {secret!r} is empty")
    return token


class BearerGuard:
    """A FastAPI dependency: `dependencies=[Depends(guard)]` or a parameter."""

    def __init__(self, token: str | None):
        self._token = token.encode() if token is not None else None

    @property
    def enabled(self) -> bool:
        """Whether a token is configured."""
        return self._token is not None

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> None:
        if self._token is None:
            raise ApiError(403, "writes_disabled", "writes are disabled: no api_token configured")
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, self._token):
            raise ApiError(
                401,
                "unauthorized",
                "a valid bearer token is required (Authorization: Bearer <api_token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
