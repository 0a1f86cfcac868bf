"""The one seam to LiveKit: the only package that imports `livekit.api`.

_livekit.py       LiveKit: what the tools call, over the adapters below
_rooms.py         ┐
_participants.py  │
_dispatch.py      │ one adapter per LiveKit service; each method is one LiveKit call, declared with
_sip.py           │ @read or @change (verified by which tool, served by which service) in _adapter.py
_egress.py        │
_ingress.py       │
_rpc.py           ┘
_call.py          the call path they share: timeout, retries, bounded answers, the foreign errors' table
_convert.py       protobuf to our models
_tokens.py        the tokens we sign (our calls', reused; join tokens)
_webhooks.py      LiveKit's webhooks, verified
_private.py       every private attribute of livekit-api and aiohttp we use, and why
_imports.py       livekit-api and aiohttp, loaded by the first LiveKit call, not at start-up
"""

from ._call import BACKOFF_FIRST, BACKOFF_MAX, MAX_ANSWER
from ._convert import display_url
from ._egress import EGRESS_LIMIT
from ._livekit import LiveKit
from ._participants import Census, ParticipantPage
from ._rpc import RPC_MARGIN, RPC_MESSAGES, rpc_limit
from ._sip import SIP_LIMIT
from ._tokens import CallTokens as _Tokens
from ._webhooks import webhook_verifier

__all__ = [
    "BACKOFF_FIRST",
    "BACKOFF_MAX",
    "EGRESS_LIMIT",
    "MAX_ANSWER",
    "RPC_MARGIN",
    "RPC_MESSAGES",
    "SIP_LIMIT",
    "Census",
    "LiveKit",
    "ParticipantPage",
    "_Tokens",  # its old name, which tests/test_call_tokens.py uses
    "display_url",
    "rpc_limit",
    "webhook_verifier",
]
