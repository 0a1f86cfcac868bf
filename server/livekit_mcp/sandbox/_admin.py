"""The sandbox-only admin API under /_sandbox/ (NOT part of LiveKit), and its async client.

JSON in and out; authenticated with `Authorization: Bearer <jwt>` signed by any configured key (no grant
needed). Each route calls the `State` method of the same name; errors are `{"error": "..."}`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from ._auth import AuthRejected, authenticate, sign
from ._errors import SandboxError
from ._state import State
from ._twirp import to_dict

PREFIX = "/_sandbox"
T = TypeVar("T")
Body = Mapping[str, Any]


def _opt(body: Body, key: str, kind: type[T], default: T) -> T:
    value = body.get(key)
    if value is None:
        return default
    # bool is an int in Python, but never a valid count.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SandboxError(400, f"{key!r} must be a {kind.__name__}")
    return value


def _req(body: Body, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise SandboxError(400, f"{key!r} is required and must be a string")
    return value


def _error(body: Body) -> tuple[str, str] | None:
    error = _opt(body, "error", dict, {})
    return (_req(error, "code"), _opt(error, "msg", str, "")) if error else None


def _join(state: State, body: Body) -> Any:
    return to_dict(
        state.join(
            _req(body, "room"),
            _req(body, "identity"),
            kind=_opt(body, "kind", str, "STANDARD"),
            name=_opt(body, "name", str, ""),
            kind_details=_opt(body, "kind_details", list, []),
            metadata=_opt(body, "metadata", str, ""),
            attributes=_opt(body, "attributes", dict, {}),
            permission=_opt(body, "permission", dict, None),
            tracks=_opt(body, "tracks", list, []),
        )
    )


def _join_agent(state: State, body: Body) -> Any:
    return to_dict(
        state.join_agent(
            _req(body, "room"),
            _req(body, "agent_name"),
            dispatch_id=body.get("dispatch_id") and _req(body, "dispatch_id"),
            identity=body.get("identity") and _req(body, "identity"),
            state=_opt(body, "state", str, "listening"),
            tracks=_opt(body, "tracks", list, []),
        )
    )


def _leave(state: State, body: Body) -> Any:
    state.leave(_req(body, "room"), _req(body, "identity"))
    return {}


def _fault(state: State, body: Body) -> Any:
    fault = state.fault(
        _req(body, "method"),
        latency_ms=_opt(body, "latency_ms", int, 0),
        error=_error(body),
        drop=_opt(body, "drop", bool, False),
        malformed=_opt(body, "malformed", bool, False),
        times=_opt(body, "times", int, None),
    )
    return asdict(fault)


def _clear_faults(state: State, body: Body) -> Any:
    state.clear_faults()
    return {}


def _reset(state: State, body: Body) -> Any:
    state.reset(seed=_opt(body, "seed", bool, True))
    return {}


def _populate(state: State, body: Body) -> Any:
    return state.populate(
        room=_opt(body, "room", str, None),
        participants=_opt(body, "participants", int, 0),
        rooms=_opt(body, "rooms", int, 0),
        prefix=_opt(body, "prefix", str, "room-"),
    )


def _workers(state: State, body: Body) -> Any:
    names = _opt(body, "agent_names", list, [])
    if not all(isinstance(n, str) for n in names):
        raise SandboxError(400, "'agent_names' must be a list of strings")
    state.set_workers(names)
    return {"agent_names": sorted(state.workers)}


def _webhooks(state: State, body: Body) -> Any:
    urls = _opt(body, "urls", list, [])
    if not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
        raise SandboxError(400, "'urls' must be a list of http:// or https:// URLs")
    state.webhooks.set_urls(urls)
    return {"urls": state.webhooks.urls}


def _snapshot(state: State, body: Body) -> Any:
    return state.snapshot()


_ROUTES: list[tuple[str, str, Callable[[State, Body], Any]]] = [
    ("POST", "/participants", _join),
    ("POST", "/participants/leave", _leave),
    ("POST", "/agents", _join_agent),
    ("POST", "/faults", _fault),
    ("DELETE", "/faults", _clear_faults),
    ("POST", "/workers", _workers),
    ("POST", "/reset", _reset),
    ("POST", "/populate", _populate),
    ("POST", "/webhooks", _webhooks),
    ("GET", "/state", _snapshot),
]


def _handler(
    state: State, keys: Mapping[str, str], operation: Callable[[State, Body], Any]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            if authenticate(request, keys) is None:
                raise SandboxError(401, "the sandbox admin API needs 'Authorization: Bearer <token>'")
            raw = await request.read()
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise SandboxError(400, "the body must be a JSON object")
            return web.json_response(operation(state, body))
        except AuthRejected as exc:
            return web.json_response({"error": exc.text}, status=401)
        except SandboxError as exc:
            return web.json_response({"error": exc.message}, status=exc.status)
        except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
            return web.json_response({"error": f"invalid JSON body: {exc}"}, status=400)

    return handle


def add_admin_routes(app: web.Application, state: State, keys: Mapping[str, str]) -> None:
    for method, path, operation in _ROUTES:
        app.router.add_route(method, PREFIX + path, _handler(state, keys, operation))


class SandboxAdmin:
    """Async client of the sandbox admin API; works from any process that can reach the sandbox's URL."""

    def __init__(
        self, url: str, api_key: str, api_secret: str, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        self._url = url.rstrip("/") + PREFIX
        self._key = api_key
        self._secret = api_secret
        self._own_session = session is None
        # Created on first use: aiohttp wants its session made inside a running event loop.
        self._session = session

    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {sign(self._key, self._secret)}"}
        async with self._session.request(method, self._url + path, json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise SandboxError(resp.status, data.get("error", "") if isinstance(data, dict) else str(data))
            return data

    async def join(
        self,
        room: str,
        identity: str,
        kind: str = "STANDARD",
        name: str | None = None,
        tracks: Sequence[Mapping[str, Any]] | None = None,
        attributes: Mapping[str, str] | None = None,
        metadata: str | None = None,
        permission: Mapping[str, Any] | None = None,
        kind_details: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """A participant joins; returns its ParticipantInfo as protojson."""
        body = {
            "room": room,
            "identity": identity,
            "kind": kind,
            "name": name,
            "tracks": tracks,
            "attributes": attributes,
            "metadata": metadata,
            "permission": permission,
            "kind_details": kind_details,
        }
        result: dict[str, Any] = await self._call("POST", "/participants", body)
        return result

    async def join_agent(
        self,
        room: str,
        agent_name: str,
        state: str = "listening",
        identity: str | None = None,
        dispatch_id: str | None = None,
    ) -> dict[str, Any]:
        """An agent joins for a dispatch of `agent_name`; returns its ParticipantInfo as protojson."""
        body = {
            "room": room,
            "agent_name": agent_name,
            "state": state,
            "identity": identity,
            "dispatch_id": dispatch_id,
        }
        result: dict[str, Any] = await self._call("POST", "/agents", body)
        return result

    async def leave(self, room: str, identity: str) -> None:
        await self._call("POST", "/participants/leave", {"room": room, "identity": identity})

    async def fault(
        self,
        method: str,
        latency_ms: int = 0,
        error: tuple[str, str] | str | None = None,
        drop: bool = False,
        malformed: bool = False,
        times: int | None = None,
    ) -> None:
        """Inject a fault into `method` ("RoomService/ListRooms", ... or "*"); `error` is a code or (code, msg)."""
        code, msg = (error, "") if isinstance(error, str) else error or (None, "")
        body = {
            "method": method,
            "latency_ms": latency_ms,
            "error": {"code": code, "msg": msg} if code else None,
            "drop": drop,
            "malformed": malformed,
            "times": times,
        }
        await self._call("POST", "/faults", body)

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def set_workers(self, agent_names: Sequence[str]) -> None:
        await self._call("POST", "/workers", {"agent_names": list(agent_names)})

    async def reset(self, seed: bool = True) -> None:
        await self._call("POST", "/reset", {"seed": seed})

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/state")
        return result

    async def populate(
        self, *, room: str | None = None, participants: int = 0, rooms: int = 0, prefix: str = "room-"
    ) -> dict[str, int]:
        body = {"room": room, "participants": participants, "rooms": rooms, "prefix": prefix}
        result: dict[str, int] = await self._call("POST", "/populate", body)
        return result

    async def send_webhooks_to(self, urls: Sequence[str]) -> list[str]:
        """Send the sandbox's webhooks to these URLs from now on (none: stop sending)."""
        result: dict[str, list[str]] = await self._call("POST", "/webhooks", {"urls": list(urls)})
        return result["urls"]

    async def aclose(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> SandboxAdmin:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
