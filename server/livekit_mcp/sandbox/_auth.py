"""Token checks as LiveKit's auth middleware does them (LIVEKIT_BEHAVIOR.md section 2).

Verification itself is `livekit.api.TokenVerifier` (HS256 only, `exp` required, 60 s leeway); this module
only adds the middleware's steps around it and its exact plain-text rejections.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import jwt
from aiohttp import web
from livekit.api import TokenVerifier
from livekit.api.access_token import Claims

BEARER = "Bearer "


class AuthRejected(Exception):
    """The middleware refuses the token: a plain-text 401 whose body is `text`."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@contextmanager
def _short_secrets_allowed() -> Iterator[None]:
    # LiveKit's dev secret is "secret" (6 bytes); PyJWT warns about HMAC keys under 32 bytes, which the
    # server accepts. Safe here: the block is synchronous, so no other task sees the changed filters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        yield


def read_token(request: web.Request) -> str:
    """The bearer token, or the `access_token` query parameter when there is no header ("" for none)."""
    header = request.headers.get("Authorization", "")
    if header:
        if not header.startswith(BEARER):
            raise AuthRejected("invalid authorization header. Must start with Bearer ")
        return header[len(BEARER) :]
    return request.query.get("access_token", "")


def verify(token: str, keys: Mapping[str, str]) -> Claims:
    """Claims of a token signed with one of `keys` (api key -> secret), or AuthRejected."""
    try:
        if jwt.get_unverified_header(token).get("alg") != "HS256":
            raise AuthRejected("invalid authorization token")
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss", "")
    except jwt.PyJWTError as exc:
        raise AuthRejected("invalid authorization token") from exc
    secret = keys.get(issuer) if isinstance(issuer, str) else None
    if not secret:
        raise AuthRejected("invalid API key")
    try:
        with _short_secrets_allowed():
            return TokenVerifier(issuer, secret).verify(token)
    except (jwt.PyJWTError, TypeError, ValueError, AttributeError) as exc:
        # TypeError/AttributeError: a signed token whose `video` claim is not an object.
        raise AuthRejected(f"invalid authorization token: {exc}") from exc


def authenticate(request: web.Request, keys: Mapping[str, str]) -> Claims | None:
    """The request's claims; None when it carries no token (the grant check then denies)."""
    token = read_token(request)
    return verify(token, keys) if token else None


def sign(api_key: str, api_secret: str, ttl_s: int = 600) -> str:
    """A short-lived token without grants: enough for the sandbox admin API."""
    now = int(time.time())
    with _short_secrets_allowed():
        return jwt.encode({"iss": api_key, "nbf": now, "exp": now + ttl_s}, api_secret, algorithm="HS256")
