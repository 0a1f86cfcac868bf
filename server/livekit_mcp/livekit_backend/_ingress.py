"""The ingress service: streams pushed or pulled into a room.

A URL ingress is a fetch made by LiveKit's ingress service from inside the deployment: `check_pull_url` refuses a
target that resolves to a loopback, private, link-local (cloud metadata), multicast, unspecified or otherwise
non-public address, unless its host is one of LIVEKIT_MCP_INGRESS_PULL_HOSTS. Every address a name resolves to is
checked, as LiveKit may connect to any of them. (LiveKit resolves the name again when it pulls: a name whose
answers change between the two is not caught; name such a host's address, or allow it by name.)
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import anyio

from livekit_mcp.errors import InvalidInput
from livekit_mcp.models import Ingress
from livekit_mcp.text import redacted_url, shown

from . import _convert
from ._adapter import Adapter, Send, change, read
from ._call import CallPath
from ._imports import api

RESOLVE_SECONDS = 5.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _not_public(ip: Address) -> str | None:
    """What kind of address LiveKit must not be sent to fetch from, or None for a public one."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, test in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local (where cloud metadata answers)", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
    ):
        if test:
            return kind
    return None if ip.is_global else "not public"


async def check_pull_url(url: str, allowed_hosts: Sequence[str]) -> None:
    """Raises InvalidInput naming `url` when LiveKit should not be sent to pull it (see the module's docstring)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    shown_url = shown(redacted_url(url))
    if not host:
        raise InvalidInput("url", f"{shown_url} names no host")
    if host in {h.rstrip(".").lower() for h in allowed_hosts}:
        return
    allow = f"if LiveKit should pull from it, add {shown(host)} to LIVEKIT_MCP_INGRESS_PULL_HOSTS"
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            with anyio.fail_after(RESOLVE_SECONDS):
                found = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            # A name only LiveKit's network knows could be anything inside it.
            raise InvalidInput(
                "url", f"host {shown(host)} does not resolve here; nothing was sent to LiveKit; {allow}"
            ) from None
        addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found]
    for ip in addresses:
        if (kind := _not_public(ip)) is not None:
            raise InvalidInput(
                "url",
                f"{shown_url} reaches {ip} ({kind}), which LiveKit would fetch from inside its deployment; "
                f"nothing was sent to LiveKit; {allow}",
            )


class Ingresses(Adapter):
    def __init__(self, path: CallPath, pull_hosts: Sequence[str] = ()) -> None:
        super().__init__(path)
        self.pull_hosts = tuple(pull_hosts)

    @read("ListIngress", service="ingress")
    async def list_ingress(self, send: Send, *, room: str, ingress_id: str) -> list[Ingress]:
        if room:
            self.policy.check_room(room, changes=False)
        request = api.ListIngressRequest(room_name=room, ingress_id=ingress_id)
        found = await send(lambda: self.lk.ingress.list_ingress(request), item=ingress_id)
        return [_convert.ingress(i, masked=True) for i in found.items if self.policy.visible(i.room_name)]

    @change("CreateIngress", verified_by="list_ingress", service="ingress")
    async def create_ingress(
        self, send: Send, room: str, input_type: str, *, identity: str, name: str, participant_name: str, url: str
    ) -> Ingress:
        """A new ingress; its stream key (anyone holding it can publish into the room) is in this answer only."""
        if url:  # the tool checked it before its plan; checked here too, so that no way around it remains
            await check_pull_url(url, self.pull_hosts)
        request = api.CreateIngressRequest(
            input_type=input_type,  # the enum value's name, which protobuf accepts
            room_name=room,
            participant_identity=identity,
            participant_name=participant_name,
            name=name,
            url=url,
        )
        made = await send(lambda: self.lk.ingress.create_ingress(request), room=room)
        return _convert.ingress(made, masked=False)

    @change("DeleteIngress", verified_by="list_ingress", service="ingress")
    async def delete_ingress(self, send: Send, room: str, ingress_id: str) -> Ingress:
        request = api.DeleteIngressRequest(ingress_id=ingress_id)
        deleted = await send(lambda: self.lk.ingress.delete_ingress(request), room=room, item=ingress_id)
        return _convert.ingress(deleted, masked=True)
