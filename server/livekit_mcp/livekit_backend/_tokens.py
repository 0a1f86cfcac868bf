"""The tokens we sign: those our LiveKit calls are signed with (reused while fresh), and join tokens for users."""

from __future__ import annotations

import re
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from pydantic import SecretStr

from livekit_mcp.models import JoinToken, iso

from ._imports import api


@contextmanager
def short_secrets_allowed() -> Iterator[None]:
    """PyJWT warns, at every start, about HMAC keys under 32 bytes; `--dev`'s secret (livekit-server --dev's
    "secret") is 6, and LiveKit accepts it. Not ours to repeat: the dev key is public by design, and a real
    deployment's secret is LiveKit's to check. The blocks inside are synchronous, so no other task sees the
    filters changed."""
    import jwt  # loaded with livekit-api, when the first token is signed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        yield


class CallTokens:
    """The JWTs LiveKit calls are signed with, reused while they are fresh.

    livekit-api signs a new token (JSON, base64 and HMAC) for every call; livekit-server wants a token per room
    for room-admin calls (its `room` grant must equal the room asked about), so a fan-out over N rooms needs N
    tokens whatever we do, but the next scan, the confirmation that re-reads what it is about to change, and
    find_agent's checks of indexed agents need none. A token lives 10 minutes and is used for its first 5, so it
    is never sent near its expiry; at most `KEPT` are kept, the least recently used going first.
    """

    TTL = 600
    REUSE = 300
    KEPT = 20_000

    def __init__(self, api_key: str, api_secret: SecretStr) -> None:
        self._key = api_key
        self._secret = api_secret
        self._cache: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()

    def header(self, grants: api.VideoGrants | None, sip: api.SIPGrants | None = None) -> dict[str, str]:
        """What livekit-api's `Service._auth_header` returns, from the cache when it can."""
        key = f"{grants!r}|{sip!r}"  # the grants are dataclasses: their repr names every field
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.REUSE:
            self._cache.move_to_end(key)
            return hit[1]
        token = api.AccessToken(self._key, self._secret.get_secret_value()).with_ttl(timedelta(seconds=self.TTL))
        if grants is not None:
            token.with_grants(grants)
        if sip is not None:
            token.with_sip_grants(sip)
        with short_secrets_allowed():
            header = {"authorization": f"Bearer {token.to_jwt()}"}
        self._cache[key] = (now, header)
        if len(self._cache) > self.KEPT:
            self._cache.popitem(last=False)
        return header


def join_token(
    api_key: str,
    api_secret: SecretStr,
    url: str,
    room: str,
    identity: str,
    name: str,
    ttl: int,
    grants: dict[str, bool],
) -> JoinToken:
    """A join token for one room at `url`, signed with our key, valid `ttl` seconds; only the join `grants`
    (can_publish, can_subscribe, can_publish_data), never an admin one."""
    # Everything else explicitly off: VideoGrants() alone would let the holder publish and send data.
    video = api.VideoGrants(
        room_join=True,
        room=room,
        room_admin=False,
        room_create=False,
        room_list=False,
        room_record=False,
        recorder=False,
        hidden=False,
        agent=False,
        ingress_admin=False,
        can_update_own_metadata=False,
        can_publish=grants["can_publish"],
        can_subscribe=grants["can_subscribe"],
        can_publish_data=grants["can_publish_data"],
    )
    token = (
        api.AccessToken(api_key, api_secret.get_secret_value())
        .with_identity(identity)
        .with_ttl(timedelta(seconds=ttl))
        .with_grants(video)
    )
    if name:
        token = token.with_name(name)
    with short_secrets_allowed():
        signed = token.to_jwt()
    return JoinToken(
        room=room,
        identity=identity,
        url=re.sub(r"\Ahttp", "ws", url),  # what the real-time SDKs connect to: http -> ws, https -> wss
        token=signed,
        expires_at=iso(time.time() + ttl),
        ttl_seconds=ttl,
        grants=grants,
    )
