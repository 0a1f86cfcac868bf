"""The base of the per-service adapters, and how each of their methods declares the LiveKit method it calls.

A public method of an adapter is one LiveKit call, declared on it with `@read` or `@change`: a read is sent again
when it failed in passing; a change is sent once, and names the tool that shows whether it happened when its fate
is unknown. Either names the LiveKit service behind it when that is not livekit-server itself. The declaration
hands the method its `send` (the call path bound to that declaration): the one way an adapter reaches LiveKit. A
public method without a declaration is refused when its class is made, that is at import.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypedDict, TypeVar, Unpack

from livekit_mcp.policy import Policy

from ._call import CallPath, Rpc, Service

if TYPE_CHECKING:
    from ._imports import api

A = TypeVar("A", bound="Adapter")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

DECLARED: dict[Callable[..., Any], Rpc] = {}
"""Every declared adapter method, and what it calls."""


class About(TypedDict, total=False):
    """What a call is about, for the policy and for its errors (see `CallPath.call`)."""

    room: str
    identity: str
    dispatch_id: str
    item: str
    limit: float


class Send:
    """The call path bound to one declared LiveKit method: `await send(request, room=...)`."""

    def __init__(self, path: CallPath, rpc: Rpc) -> None:
        self._path, self._rpc = path, rpc

    def __call__(self, request: Callable[[], Awaitable[T]], **about: Unpack[About]) -> Awaitable[T]:
        return self._path.call(self._rpc, request, **about)


Method = Callable[Concatenate[A, Send, P], Awaitable[R]]
Declared = Callable[Concatenate[A, P], Awaitable[R]]


def read(name: str, *, service: Service | None = None) -> Callable[[Method[A, P, R]], Declared[A, P, R]]:
    """Declares an adapter method that calls LiveKit's `name`, which changes nothing."""
    return _declare(Rpc(name, service=service))


def change(
    name: str, *, verified_by: str, service: Service | None = None
) -> Callable[[Method[A, P, R]], Declared[A, P, R]]:
    """Declares an adapter method that calls LiveKit's `name`, which changes something; `verified_by` is the tool
    that shows whether it happened ("": none can)."""
    return _declare(Rpc(name, verified_by=verified_by, service=service))


def _declare(rpc: Rpc) -> Callable[[Method[A, P, R]], Declared[A, P, R]]:
    def declare(method: Method[A, P, R]) -> Declared[A, P, R]:
        @functools.wraps(method)
        async def declared(self: A, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return await method(self, Send(self.path, rpc), *args, **kwargs)

        DECLARED[declared] = rpc
        return declared

    return declare


class Adapter:
    """The calls of one LiveKit service, over the call path shared by all."""

    def __init__(self, path: CallPath) -> None:
        self.path = path

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            if callable(value) and not name.startswith("_") and value not in DECLARED:
                raise TypeError(
                    f"{cls.__qualname__}.{name} does not say what it calls: declare it with @read(...) or "
                    "@change(..., verified_by=...), or make it private"
                )

    @property
    def lk(self) -> api.LiveKitAPI:
        return self.path.client

    @property
    def policy(self) -> Policy:
        return self.path.policy
