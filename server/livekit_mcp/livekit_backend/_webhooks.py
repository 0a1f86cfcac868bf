"""LiveKit's webhooks, checked with our key and secret (for room history)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._imports import api


def webhook_verifier(api_key: str, api_secret: str) -> Callable[[bytes, str], dict[str, Any]]:
    """A check of LiveKit's webhooks for room history: the JWT's issuer is our key, its signature our secret, its
    `sha256` claim the body's hash (livekit-api's WebhookReceiver does this); then the event, parsed, as a dict of
    protobuf field names with enums by name. Raises WebhookError saying which check failed, never echoing input.

    livekit-api, PyJWT and protobuf's json_format are loaded by the first webhook, not when the server is built:
    the first answer to an MCP client needs none of them (the cold start of bench/README.md)."""
    from livekit_mcp.errors import WebhookError

    receivers: list[Any] = []  # livekit-api's WebhookReceiver, made by the first webhook

    def verify(body: bytes, token: str) -> dict[str, Any]:
        import jwt
        from google.protobuf import json_format

        if not receivers:
            receivers.append(api.WebhookReceiver(api.TokenVerifier(api_key, api_secret)))
        receiver = receivers[0]
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise WebhookError("not a LiveKit webhook body (not UTF-8)") from None
        try:
            event = receiver.receive(text, token)
        except jwt.ExpiredSignatureError:
            raise WebhookError("the webhook's token has expired (a stale or replayed request)") from None
        except jwt.InvalidIssuerError:
            raise WebhookError(f"the webhook is signed for another API key, not '{api_key}'") from None
        except jwt.PyJWTError:
            raise WebhookError("the webhook's token is not signed with this server's API secret") from None
        except json_format.ParseError:
            raise WebhookError("not a LiveKit webhook body (not a WebhookEvent)") from None
        except Exception as exc:
            # livekit-api raises a bare Exception for a missing or wrong body hash (livekit/api/webhook.py): that,
            # and only that, is the sender's fault. Anything else is a fault of ours: raised, so it is a 500 in the
            # log rather than a 401 that would hide it (and LiveKit retries a 5xx).
            if str(exc) in ("sha256 was not found in the token", "hash mismatch"):
                raise WebhookError("the webhook's body does not match the hash it was signed with") from None
            raise
        return json_format.MessageToDict(event, preserving_proto_field_name=True)

    return verify
