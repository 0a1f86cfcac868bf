"""The one call path to LiveKit, shared by every adapter.

It owns the single `LiveKitAPI` (one aiohttp session) of a deployment, bounds every call with our own timeout
(`livekit-api` ignores its own), sends a read again while it fails in passing (a change once), bounds and checks
every answer, and maps every foreign failure (`ServerError`, aiohttp errors, protobuf decode errors, timeouts) to
the exception tree of errors.py by one table, `_foreign_errors`, applied in one place, `CallPath._mapped`.

Why one module of ~430 lines: what a call declares (`Rpc`), when it is sent again, and what its failure becomes are
read against each other (a read retried on what the table calls passing, a change's unknown fate naming its tool);
the adapters beside it hold only the calls.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

import anyio
from google.protobuf.message import DecodeError
from pydantic import SecretStr

from livekit_mcp import heap
from livekit_mcp.errors import (
    AuthenticationFailed,
    BadAnswer,
    ClientTooOld,
    DispatchNotFound,
    LiveKitError,
    NotFound,
    ParticipantNotFound,
    PermissionDenied,
    RoomNotFound,
    RoomNotLive,
    ServerFailure,
    ServiceMissing,
    Timeout,
    TooLarge,
    Unreachable,
    unsure,
)
from livekit_mcp.policy import Policy

from ._convert import display_url
from ._imports import aiohttp, api
from ._private import read_with, sign_with
from ._tokens import CallTokens

log = logging.getLogger("livekit_mcp.livekit_backend")

T = TypeVar("T")

BACKOFF_FIRST = 0.05
"""Seconds before the first retry; doubled for each next one, up to BACKOFF_MAX, each with jitter."""
BACKOFF_MAX = 1.0
MAX_ANSWER = 64 * 1024 * 1024
"""Bytes of an answer we read at most, whatever its framing (10,000 rooms or participants are a few MiB)."""


Service = Literal["SIP", "egress", "ingress"]


@dataclass(frozen=True)
class Rpc:
    """One LiveKit method as this seam calls it, declared with the adapter method that calls it."""

    name: str
    """LiveKit's name for it, e.g. ListRooms."""
    verified_by: str | None = None
    """For a change, the tool that shows whether it happened when its fate is unknown (timeout, connection lost
    after sending, garbled answer): sending it again blindly could do it twice ("": no tool can). None: a read,
    which changes nothing, and is sent again when it failed in passing (connection, 5xx, 408, 429)."""
    service: Service | None = None
    """The LiveKit service behind it when not livekit-server's own: SIP, egress and ingress run as separate services
    (livekit/sip, livekit/egress, livekit/ingress) that livekit-server reaches through Redis."""

    @property
    def changes(self) -> bool:
        return self.verified_by is not None


@dataclass(frozen=True)
class Call:
    """One call, as its errors tell it: what was called, about what, and where."""

    rpc: Rpc
    url: str
    api_key: str
    limit: float
    room: str = ""
    identity: str = ""
    dispatch_id: str = ""
    item: str = ""
    """The trunk, egress or ingress the call is about, for its not-found."""


# --- What LiveKit's failures mean ----------------------------------------------------------------------

# LiveKit's not_found messages (docs/livekit-behavior.md): the message is what tells them apart. They are
# matched by their end: livekit-server v1.13.5 wraps the errors of its room layer (utils/xtwirp), so the
# message reads "twirp error unknown: requested room does not exist"; other servers send it bare.
_ROOM_MISSING = "requested room does not exist"
_PARTICIPANT_MISSING = "participant does not exist"
_DISPATCH_MISSING = "dispatch ID not found"
_EGRESS_MISSING = "egress does not exist"
_INGRESS_MISSING = "ingress does not exist"
_TRUNK_MISSING = "requested sip trunk does not exist"
# A call routed (psrpc) to the node of a room or participant that is not live is claimed by nobody: after
# about 3 s livekit-server v1.13.5 answers 503 unavailable "twirp error unknown: no response from servers"
# (MutePublishedTrack, SendData, UpdateSubscriptions, ListDispatch, DeleteDispatch). Nothing was done, and
# asking again brings the same answer 3 s later: it is "not there", not a failure in passing. A call to a
# SIP, egress or ingress service that nobody runs is answered the same way.
_NO_RESPONSE = "no response from servers"
# livekit-server v1.13.5 without Redis: "sip not connected (redis required)", and likewise for egress and ingress.
_NOT_CONNECTED = "not connected (redis required)"
# MoveParticipant of a participant whose client is too old: failed_precondition from 1.13.6 on (1.13.11
# pkg/rtc/participant.go:97), an unknown error before.
_TOO_OLD_TO_MOVE = "participant client version does not support moving"


def _not_live(exc: Exception) -> bool:
    """LiveKit's answer to a call routed to a room or participant that is not live (see `_NO_RESPONSE`)."""
    return isinstance(exc, api.ServerError) and exc.status == 503 and exc.message.endswith(_NO_RESPONSE)


def _service_missing(exc: Exception) -> bool:
    """LiveKit's answer when no SIP, egress or ingress service serves the call (docs/livekit-behavior.md)."""
    return _not_live(exc) or (isinstance(exc, api.ServerError) and exc.message.endswith(_NOT_CONNECTED))


def _transient(exc: Exception) -> bool:
    """A failure that another attempt may not meet: the only kind a read is retried on."""
    if _service_missing(exc):  # a room that is not live included
        return False
    if isinstance(exc, api.ServerError):
        # 501 (unimplemented) is a 5xx that will never change.
        return exc.status in (408, 429) or (exc.status >= 500 and exc.status != 501)
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ClientConnectorDNSError | aiohttp.ServerFingerprintMismatch):
        return False  # a wrong URL or certificate: the same answer would come back
    return isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)


class Twirp(NamedTuple):
    """A `ServerError` by HTTP status, Twirp code and the end of its message (None: any; "": no message at all),
    for a call to a SIP, egress or ingress service only (`service`), or for a call about a room only (`room`)."""

    status: int | None = None
    code: str | None = None
    ends: str | None = None
    service: bool = False
    room: bool = False

    def matches(self, exc: Exception, call: Call) -> bool:
        if not isinstance(exc, api.ServerError):
            return False
        says = exc.message.endswith(self.ends) if self.ends else not exc.message
        return (
            self.status in (None, exc.status)
            and self.code in (None, exc.code)
            and (self.ends is None or says)
            and (call.rpc.service is not None or not self.service)
            and (bool(call.room) or not self.room)
        )


Mapped = Callable[[Call, Any], LiveKitError]  # the foreign exception is the second argument, of the row's type


def _missing(what: str, lister: str) -> Mapped:
    return lambda c, e: NotFound(f"{what} '{c.item}' does not exist; {lister} shows the ones that do")


_TLS_HINT = "an https:// or wss:// URL needs a server with a valid certificate; a local one is often http://"
_URL_HINT = "set LIVEKIT_URL to e.g. https://host or ws://host:7880"


@functools.cache
def _foreign_errors() -> tuple[tuple[Twirp | type[Exception] | tuple[type[Exception], ...], Mapped], ...]:
    """Each foreign failure and our error for it; the first row that matches wins. Made at the first failure, not
    at import (see `_imports`)."""
    return (
        (TimeoutError, lambda c, e: Timeout(c.url, c.limit, c.rpc.name, check=c.rpc.verified_by)),
        # A non-200 answer: a Twirp error, or plain text (`livekit-api` makes that code "unknown", no message).
        (Twirp(401, "unauthenticated"), lambda c, e: PermissionDenied(c.url, c.api_key, c.rpc.name)),
        # The plain 401 of a bad key or token, whatever its text: 1.13.5's "invalid API key: <key>" and "invalid token:
        # <jwt>, error: …", 1.13.11's "invalid API key" and "invalid authorization token: …" (pkg/service/auth.go:95,
        # :101), which livekit-api reads as code unknown with no message.
        (Twirp(401), lambda c, e: AuthenticationFailed(c.url, c.api_key)),
        (Twirp(code="not_found", ends=_ROOM_MISSING), lambda c, e: RoomNotFound(c.room)),
        (Twirp(code="not_found", ends=_PARTICIPANT_MISSING), lambda c, e: ParticipantNotFound(c.room, c.identity)),
        (Twirp(code="not_found", ends=_DISPATCH_MISSING), lambda c, e: DispatchNotFound(c.room, c.dispatch_id)),
        (Twirp(code="not_found", ends=_EGRESS_MISSING), _missing("egress", "list_egress")),
        (Twirp(code="not_found", ends=_INGRESS_MISSING), _missing("ingress", "list_ingress")),
        (Twirp(code="not_found", ends=_TRUNK_MISSING), _missing("SIP trunk", "list_sip_trunks")),
        (Twirp(ends=_NOT_CONNECTED, service=True), _no_service),
        (Twirp(503, ends=_NO_RESPONSE, service=True), _no_service),
        # Routed to whoever hosts the participant (mute) or the room (data, dispatches): nobody does.
        (
            Twirp(503, ends=_NO_RESPONSE, room=True),
            lambda c, e: ParticipantNotFound(c.room, c.identity) if c.identity else RoomNotFound(c.room),
        ),
        (
            Twirp(code="failed_precondition", ends=_TOO_OLD_TO_MOVE),
            lambda c, e: ClientTooOld(c.rpc.name, c.room, c.identity),
        ),
        # 1.13.6 and later: a plain-text "request body too large" for a body over 10 MiB (1.13.11
        # pkg/service/utils.go:139-154, pkg/config/config.go:653), which livekit-api reads as unknown, no message.
        (Twirp(413), lambda c, e: TooLarge(c.rpc.name)),
        (
            Twirp(code="unknown", ends=""),
            lambda c, e: BadAnswer(c.url, c.rpc.name, e.status, "no Twirp error in the body", check=c.rpc.verified_by),
        ),
        (Twirp(), lambda c, e: ServerFailure(c.rpc.name, e.code, e.status, e.message)),
        (_NotLiveKit, lambda c, e: BadAnswer(c.url, c.rpc.name, e.status, e.reason, check=c.rpc.verified_by)),
        (
            DecodeError,
            lambda c, e: BadAnswer(
                c.url, c.rpc.name, 200, "the answer was not a valid protobuf message", check=c.rpc.verified_by
            ),
        ),
        (
            aiohttp.ClientConnectorDNSError,
            lambda c, e: Unreachable(c.url, f"no such host: {e.host}", hint="check the host name in LIVEKIT_URL"),
        ),
        (aiohttp.ClientSSLError, lambda c, e: Unreachable(c.url, f"TLS failed: {_reason(e.os_error)}", hint=_TLS_HINT)),
        # Refused, no route: nothing was sent.
        (
            aiohttp.ClientConnectorError,
            lambda c, e: Unreachable(
                c.url, "connection refused" if isinstance(e.os_error, ConnectionRefusedError) else _reason(e.os_error)
            ),
        ),
        (aiohttp.InvalidURL, lambda c, e: Unreachable(c.url, "not a valid URL", hint=_URL_HINT)),
        # The request went out, the answer did not come back: a change may have been made.
        (
            (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError),
            lambda c, e: Unreachable(
                c.url, f"the connection broke during {c.rpc.name}: {_reason(e)}", unsure=unsure(c.rpc.verified_by)
            ),
        ),
        (aiohttp.ClientError, lambda c, e: ServerFailure(c.rpc.name, "transport", 0, _reason(e))),
    )


def _no_service(c: Call, e: Any) -> LiveKitError:
    return ServiceMissing(c.url, c.rpc.service or "", c.rpc.name, e.message)  # its rows match a service's calls only


def _reason(exc: BaseException) -> str:
    """A one-line reason from a transport error, without the request it was about."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


# --- Answers: bounded, and LiveKit's -------------------------------------------------------------------


class _NotLiveKit(Exception):
    """An answer no LiveKit server gives, caught in the session before `livekit-api` reads it as protobuf."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def _check_answer(response: aiohttp.ClientResponse) -> None:
    # `livekit-api` decodes any 200 as protobuf, and an empty body decodes as an empty list: a web page or a
    # proxy's answer would pass for "no rooms". LiveKit always labels its successes application/protobuf.
    if response.status == 200 and response.content_type != "application/protobuf":
        raise _NotLiveKit(200, f"{response.content_type} instead of protobuf")
    if (response.content_length or 0) > MAX_ANSWER:
        raise _NotLiveKit(response.status, f"{response.content_length:,} bytes announced, over the {MAX_ANSWER:,} read")


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """A body of at most MAX_ANSWER bytes: `livekit-api` reads every answer whole, and one without Content-Length
    (chunked, or until the connection closes) has no size to check in advance."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_any():  # decompressed bytes: a zip bomb counts in full
            size += len(chunk)
            if size > MAX_ANSWER:
                raise _NotLiveKit(response.status, f"an answer longer than the {MAX_ANSWER:,} bytes read")
            chunks.append(chunk)
    except BaseException:
        response.close()
        raise
    return b"".join(chunks)


@functools.cache
def _bounded_response() -> type[aiohttp.ClientResponse]:
    return read_with(_read_bounded)


def _backoff(attempt: int) -> float:
    """Capped exponential backoff with jitter, so that many clients do not retry in step."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)


# --- The call path ---------------------------------------------------------------------------------------


class CallPath:
    """Calls to one LiveKit deployment: opened and closed by `LiveKit`, used by its adapters."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: SecretStr,
        *,
        timeout: float,
        retries: int,
        policy: Policy,
        listed: Callable[[str], Awaitable[bool]],
    ) -> None:
        """`listed` says whether LiveKit lists a room: the second look some errors need (see `_second_look`)."""
        self.url = display_url(url)
        self._target = url
        self.api_key = api_key
        self._secret = api_secret
        self.timeout = timeout
        self.retries = retries
        self.policy = policy
        self._listed = listed
        self._api: api.LiveKitAPI | None = None
        self._session: aiohttp.ClientSession | None = None
        self._open = False

    def open(self) -> None:
        self._open = True

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()  # leaves a session it did not create open: ours is closed below
            self._api = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._open = False

    @property
    def client(self) -> api.LiveKitAPI:
        """The client, created by the first call (which imports livekit-api: see `_imports`)."""
        if not self._open:
            raise RuntimeError("LiveKit is used outside its `async with` block")
        if self._api is None:
            self._session = aiohttp.ClientSession(raise_for_status=_check_answer, response_class=_bounded_response())
            # failover=False: LiveKit Cloud failover replays requests, and a change must never be replayed blindly.
            self._api = api.LiveKitAPI(
                self._target, self.api_key, self._secret.get_secret_value(), session=self._session, failover=False
            )
            tokens = CallTokens(self.api_key, self._secret)
            for service in (
                self._api.room,
                self._api.agent_dispatch,
                self._api.sip,
                self._api.egress,
                self._api.ingress,
            ):
                sign_with(service, tokens.header)  # reuse tokens instead of signing one per call
            heap.settle_loaded()  # livekit-api, aiohttp and protobuf's modules are loaded now
        return self._api

    async def call(
        self,
        rpc: Rpc,
        request: Callable[[], Awaitable[T]],
        *,
        room: str = "",
        identity: str = "",
        dispatch_id: str = "",
        item: str = "",
        limit: float | None = None,
    ) -> T:
        """One LiveKit call within `limit` seconds (our timeout unless given), a read retried while it fails in
        passing; errors mapped. `item` names the trunk, egress or ingress the call is about, for its not-found."""
        if room:
            self.policy.check_room(room, changes=rpc.changes)
        _ = self.client  # before the clock starts: importing livekit-api is not LiveKit's time
        limit = limit or self.timeout
        about = Call(rpc, self.url, self.api_key, limit, room, identity, dispatch_id, item)
        async with self._mapped(about):
            with anyio.fail_after(limit) as scope:
                return await self._attempts(rpc, request, scope.deadline)

    async def _attempts(self, rpc: Rpc, request: Callable[[], Awaitable[T]], deadline: float) -> T:
        for attempt in range(self.retries + 1):
            try:
                return await request()
            except Exception as exc:
                delay = _backoff(attempt)
                # Out of retries, or no time left for one: the failure itself says more than a timeout would.
                # A change is retried only when its connection could not even be opened: nothing was sent then.
                unsent = type(exc) is aiohttp.ClientConnectorError
                if (
                    (rpc.changes and not unsent)
                    or not _transient(exc)
                    or attempt == self.retries
                    or anyio.current_time() + delay > deadline
                ):
                    raise
                log.info("LiveKit %s failed (%s); retry %d of %d", rpc.name, _reason(exc), attempt + 1, self.retries)
                await anyio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @contextlib.asynccontextmanager
    async def _mapped(self, call: Call) -> AsyncIterator[None]:
        """The one place foreign errors are mapped: the first row of `_foreign_errors` that matches makes ours,
        raised `from` the foreign one. Anything else is not a LiveKit or transport failure but a bug of ours, and
        goes through as it is, for the SDK to log with its traceback."""
        try:
            yield
        except Exception as exc:
            row = next((to for key, to in _foreign_errors() if _matches(key, exc, call)), None)
            if row is None:
                raise
            error = await self._second_look(row(call, exc), exc, call)
            log.info("LiveKit %s failed: %s (%s: %s)", call.rpc.name, error, type(exc).__name__, _reason(exc))
            log.debug("LiveKit %s failure in detail", call.rpc.name, exc_info=exc)
            raise error from exc

    async def _second_look(self, error: LiveKitError, exc: Exception, call: Call) -> LiveKitError:
        """The error, told better once we know whether LiveKit lists the room (kept when it cannot tell)."""
        if isinstance(error, ParticipantNotFound) and await self._room_listed(call.room) is False:
            # LiveKit says "participant does not exist" for a missing room too; the room is the real news.
            return RoomNotFound(call.room)
        if isinstance(error, RoomNotFound) and _not_live(exc) and await self._room_listed(call.room):
            # Listed, yet no node answered for it: closing, or its node is down. Not "does not exist".
            return RoomNotLive(call.rpc.name, call.room)
        return error

    async def _room_listed(self, room: str) -> bool | None:
        try:
            return await self._listed(room)
        except LiveKitError:
            return None


def _matches(key: Twirp | type[Exception] | tuple[type[Exception], ...], exc: Exception, call: Call) -> bool:
    return key.matches(exc, call) if isinstance(key, Twirp) else isinstance(exc, key)
