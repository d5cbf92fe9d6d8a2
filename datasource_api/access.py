"""Who may call the service: bearer tokens (constant-time) and CORS, both off by default."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence

from aiohttp import web

from datasource_api.routes import ApiError
from exporter.settings import ApiConfig

COOKIE = "pi_token"


def token_ok(presented: str | None, tokens: Sequence[str]) -> bool:
    """Constant-time against every configured token (no early exit that would tell which);
    digests first, so not even the length of a token shows in the timing."""
    if not presented:
        return False
    given = hashlib.sha256(presented.encode()).digest()
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given, hashlib.sha256(token.encode()).digest())
    return ok


def presented_token(request: web.Request) -> str | None:
    """The token of `Authorization: Bearer`, the password of Basic auth, or the pages' cookie."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return request.cookies.get(COOKIE)


def _protected(config: ApiConfig, path: str) -> bool:
    if path.startswith("/api/") or path == "/loki/api/v1/push":
        return True
    return config.protect_metrics and path in ("/metrics", "/healthz")


def auth_middleware(config: ApiConfig) -> Callable:
    @web.middleware
    async def auth(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if config.tokens and request.method != "OPTIONS" and _protected(config, request.path) \
                and not token_ok(presented_token(request), config.tokens):
            resp = ApiError(401, "a valid token is required (Authorization: Bearer ...)").response()
            resp.headers["WWW-Authenticate"] = 'Bearer realm="postfix-insights"'
            return resp
        return await handler(request)
    return auth


def cors_middleware(config: ApiConfig) -> Callable:
    allowed = set(config.cors_origins)

    @web.middleware
    async def cors(request: web.Request, handler):  # type: ignore[no-untyped-def]
        origin = request.headers.get("Origin")
        if not allowed or not origin or not request.path.startswith("/api/") \
                or not ("*" in allowed or origin in allowed):
            return await handler(request)
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                   "Access-Control-Allow-Headers": "Authorization, Content-Type",
                   "Access-Control-Allow-Methods": "GET, OPTIONS", "Access-Control-Max-Age": "600"}
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=headers)
        response = await handler(request)
        response.headers.update(headers)
        return response
    return cors
