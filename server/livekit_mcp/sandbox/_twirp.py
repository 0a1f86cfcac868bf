"""Twirp transport as LiveKit serves it: content types, protobuf/protojson codec and errors.

Everything here follows livekit-server 1.13.5 (tests/sandbox/ checks it); the method table lives in `_services.py`.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

PROTOBUF = "application/protobuf"
JSON = "application/json"

# twitchtv/twirp errors.go: ServerHTTPStatusFromErrorCode.
STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

M = TypeVar("M", bound=Message)


class TwirpError(Exception):
    """A Twirp error: answered as JSON `{"code", "msg", "meta"?}` with the code's HTTP status."""

    def __init__(self, code: str, msg: str, meta: dict[str, str] | None = None, *, unanswered: bool = False) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.meta = meta or {}
        # A call nobody answered: the server sends this error only after waiting (`Sandbox.no_response_s`).
        self.unanswered = unanswered

    def response(self) -> web.Response:
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:
            body["meta"] = self.meta
        return web.Response(status=STATUS[self.code], body=json.dumps(body).encode(), headers={"Content-Type": JSON})


def bad_route(msg: str, method: str, path: str) -> TwirpError:
    return TwirpError("bad_route", msg, {"twirp_invalid_route": f"{method} {path}"})


# Errors raised in the room's node reach the client through psrpc, which livekit-server wraps again
# (utils/xtwirp): their message gains this prefix while the code and status stay.
ROUTED = "twirp error unknown: "


def routed(code: str, msg: str) -> TwirpError:
    """An error of the room's node, as the client receives it."""
    return TwirpError(code, ROUTED + msg)


def no_response() -> TwirpError:
    """A call routed to a room or participant that is not live: no node claims it, and after its retries
    (about 3 s on livekit-server 1.13.5) the server gives up."""
    return TwirpError("unavailable", ROUTED + "no response from servers", unanswered=True)


def plain_text(status: int, text: str) -> web.Response:
    """A plain-text answer from outside Twirp (auth middleware, unknown path, body limit), `text` as is."""
    return web.Response(
        status=status,
        body=text.encode(),
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


def content_kind(header: str) -> str | None:
    """`application/protobuf` or `application/json` (case-insensitive, parameters ignored), else None."""
    kind = header.split(";", 1)[0].strip().lower()
    return kind if kind in (PROTOBUF, JSON) else None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # protojson refuses a field given twice; Python's json would keep the last one.
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise json_format.ParseError("a field is given twice")
    return dict(pairs)


def _first_json_value(body: bytes) -> Any:
    """The first JSON value of `body`, as Twirp reads it (json.Decoder.Decode: what follows it is never read; an
    empty body is an error, not `{}`)."""
    text = body.decode()
    start = len(text) - len(text.lstrip(" \t\r\n"))
    return json.JSONDecoder(object_pairs_hook=_no_duplicates).raw_decode(text, start)[0]


def decode(body: bytes, kind: str, cls: type[M]) -> M:
    message = cls()
    try:
        if kind == PROTOBUF:
            message.ParseFromString(body)
        else:
            data = _first_json_value(body)
            # protojson (Go) only accepts an object at the top; Python's parser would take `[]` or `"x"`.
            if not isinstance(data, dict):
                raise json_format.ParseError("the request is not a JSON object")
            json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, ValueError, RecursionError) as exc:
        # ValueError covers json.JSONDecodeError and UnicodeDecodeError.
        what = "protobuf" if kind == PROTOBUF else "json"
        raise TwirpError("malformed", f"the {what} request could not be decoded") from exc
    return message


def to_dict(message: Message) -> dict[str, Any]:
    """protojson as Twirp emits it: snake_case, every field, enum names, int64 as strings."""
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )


def encode(message: Message, kind: str) -> web.Response:
    if kind == PROTOBUF:
        return web.Response(body=message.SerializeToString(), headers={"Content-Type": PROTOBUF})
    return web.Response(body=json.dumps(to_dict(message)).encode(), headers={"Content-Type": JSON})
