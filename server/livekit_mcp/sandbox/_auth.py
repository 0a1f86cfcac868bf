"""Token checks as livekit-server's auth middleware does them (1.13.5, or 1.13.11: see _versions.py).

HS256 only, `exp` optional (required from 1.13.11 on), 60 s leeway on `exp` and `nbf`, with livekit-server's exact
plain-text rejections; `livekit.api.TokenVerifier` reads the grants once the token is verified.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import jwt
from aiohttp import web
from livekit.api import TokenVerifier
from livekit.api.access_token import Claims

from ._versions import V1_13_5, LiveKitVersion

BEARER = "Bearer "
LEEWAY_S = 60  # on exp and nbf, as livekit-server allows


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


# The grants as protocol's auth/grants.go declares them (VideoGrant, SIPGrant): JSON name -> Go type.
_GRANTS: dict[str, tuple[str, dict[str, str]]] = {
    "video": (
        "VideoGrant",
        {
            **dict.fromkeys(
                ("roomCreate", "roomList", "roomRecord", "roomAdmin", "roomJoin", "canPublish", "canSubscribe"),
                "bool",
            ),
            **dict.fromkeys(
                ("canPublishData", "canUpdateOwnMetadata", "ingressAdmin", "hidden", "recorder", "agent"), "bool"
            ),
            **dict.fromkeys(("canSubscribeMetrics", "canManageAgentSession"), "bool"),
            "room": "string",
            "destinationRoom": "string",
            "canPublishSources": "[]string",
        },
    ),
    "sip": ("SIPGrant", {"admin": "bool", "call": "bool"}),
}
_JSON_TYPES = {bool: "bool", str: "string", int: "number", float: "number", list: "array", dict: "object"}


def _fits(value: Any, go_type: str) -> bool:
    if value is None:
        return True  # null leaves a Go field as it is
    if go_type == "[]string":
        return isinstance(value, list)
    return isinstance(value, bool if go_type == "bool" else str)


def _go_grants(payload: dict[str, Any]) -> dict[str, Any]:
    """The grant claims as Go's encoding/json reads them into protocol's ClaimGrants: keys matched to the fields'
    JSON names case-insensitively (`roomlist` is `roomList`, `room_list` is nothing), unknown keys dropped, and a
    value of the wrong JSON type refused with Go's own words (the differential test found each of these)."""
    out = dict(payload)
    for claim, (struct, fields) in _GRANTS.items():
        grant = payload.get(claim)
        if grant is None:
            continue
        if not isinstance(grant, dict):
            raise ValueError(
                f"json: cannot unmarshal {_JSON_TYPES.get(type(grant), 'string')} into Go struct field "
                f"tokenClaims.ClaimGrants.{claim} of type auth.{struct}"
            )
        read: dict[str, Any] = {}
        for key, value in grant.items():
            name = next((f for f in fields if f == key), None) or next(
                (f for f in fields if f.lower() == key.lower()), None
            )
            if name is None:
                continue
            go_type = fields[name]
            bad = value if not _fits(value, go_type) else None
            if go_type == "[]string" and isinstance(value, list):
                bad, go_type = next((v for v in value if not isinstance(v, str)), None), "string"
            if bad is not None:
                raise ValueError(
                    f"json: cannot unmarshal {_JSON_TYPES.get(type(bad), 'string')} into Go struct field "
                    f"{struct}.ClaimGrants.{claim}.{name} of type {go_type}"
                )
            if value is not None:
                read[name] = value
        out[claim] = read
    return out


def verify(token: str, keys: Mapping[str, str], version: LiveKitVersion = V1_13_5) -> Claims:
    """Claims of a token signed with one of `keys` (api key -> secret), or AuthRejected with the text
    livekit-server `version` answers (its reasons are golang-jwt's: signature first, then exp and nbf)."""
    try:
        alg = jwt.get_unverified_header(token).get("alg")
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AuthRejected("invalid authorization token") from exc
    times = [payload[c] for c in ("exp", "nbf", "iat") if c in payload]
    names = [payload[c] for c in ("iss", "sub", "jti") if c in payload]
    if any(isinstance(t, bool) or not isinstance(t, int | float) for t in times) or any(
        not isinstance(n, str) for n in names
    ):
        # protocol's ParseAPIToken reads the registered claims before the key: a time that is not a number or a
        # name that is not a string fails there, as a token that is not a JWT does (the differential test).
        raise AuthRejected("invalid authorization token")
    issuer = payload.get("iss", "")
    secret = keys.get(issuer) if isinstance(issuer, str) else None
    if not secret:
        raise AuthRejected("invalid API key" if version.new_auth_texts else f"invalid API key: {issuer}")

    def invalid(reason: str) -> AuthRejected:
        if version.new_auth_texts:
            return AuthRejected(f"invalid authorization token: {reason}")
        return AuthRejected(f"invalid token: {token}, error: {reason}")

    if alg != "HS256":
        raise invalid(f"token signature is invalid: signing method {alg} is invalid")
    try:
        with _short_secrets_allowed():
            jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_iss": False,
                    "verify_aud": False,
                },
            )
    except jwt.InvalidSignatureError as exc:
        raise invalid("token signature is invalid: signature is invalid") from exc
    except jwt.PyJWTError as exc:
        raise invalid(f"token is malformed: {exc}") from exc
    now = time.time()
    try:
        # `exp` is optional on 1.13.5: it accepts a token without one.
        if version.exp_required and "exp" not in payload:
            raise invalid("token has invalid claims: token is missing required claim: exp claim is required")
        if "exp" in payload and now > float(payload["exp"]) + LEEWAY_S:
            raise invalid("token has invalid claims: token is expired")
        if "nbf" in payload and now < float(payload["nbf"]) - LEEWAY_S:
            raise invalid("token has invalid claims: token is not valid yet")
        grants = _go_grants(payload)
    except ValueError as exc:
        raise invalid(f"token is malformed: could not JSON decode claim: {exc}") from exc
    try:
        # livekit-api's TokenVerifier reads the grants from a token: this one carries them as Go read them.
        with _short_secrets_allowed():
            read = jwt.encode(grants, secret, algorithm="HS256")
        return TokenVerifier(issuer, secret).verify(read, verify_signature=False)
    except (TypeError, ValueError, AttributeError) as exc:
        # A claim of the wrong type (e.g. a `video` that is not an object).
        raise invalid(f"token is malformed: could not JSON decode claim: {exc}") from exc


def authenticate(request: web.Request, keys: Mapping[str, str], version: LiveKitVersion = V1_13_5) -> Claims | None:
    """The request's claims; None when it carries no token (the grant check then denies)."""
    token = read_token(request)
    return verify(token, keys, version) if token else None


def sign(api_key: str, api_secret: str, ttl_s: int = 600) -> str:
    """A short-lived token without grants: enough for the sandbox admin API."""
    now = int(time.time())
    with _short_secrets_allowed():
        return jwt.encode({"iss": api_key, "nbf": now, "exp": now + ttl_s}, api_secret, algorithm="HS256")
