"""API-key protection of the prediction endpoints.

Checked in a pure ASGI layer in front of the app, so a request without the key is refused (401)
before its body is read or validated: an unauthenticated client learns nothing about the API,
the request is never logged as a prediction, and the check costs no FastAPI dependency
resolution. The OpenAPI document declares the scheme (see ``app._openapi``).
"""

from __future__ import annotations

import secrets
from typing import Any

from bridgeai.service.errors import Unauthorized, error_response

#: The endpoints that need the key; /health, /ready, /metrics and the docs stay open.
PROTECTED_PATHS = frozenset({"/predict", "/predict/batch"})


class ApiKeyMiddleware:
    """Answer 401 unless a protected request carries the API key in ``header``."""

    def __init__(self, app: Any, api_key: str, header: str) -> None:
        self.app = app
        self._key = api_key.encode()
        self._header = header
        self._raw_header = header.lower().encode("latin-1")
        self._challenge = f'ApiKey header="{header}"'

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in PROTECTED_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == self._raw_header), None)
        if given is None or not given:
            message = f"Missing API key: send it in the {self._header} header"
        elif not secrets.compare_digest(given, self._key):
            message = f"Invalid API key in the {self._header} header"
        else:
            await self.app(scope, receive, send)
            return
        error = Unauthorized(message, headers={"WWW-Authenticate": self._challenge})
        await error_response(error, scope)(scope, receive, send)
