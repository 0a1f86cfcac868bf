"""LiveKit's webhooks, checked with our key and secret (for room history)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from ._imports import api
from ._tokens import short_secrets_allowed

KEPT_ATTRIBUTES = "lk."
"""The attributes parsed (the ones LiveKit and agents set: an agent's name); a participant's own are left out."""


class WebhookVerifier:
    """A check of LiveKit's webhooks for room history: the JWT's issuer is our key, its signature our secret (which
    `signed` checks alone, before the body is read), its `sha256` claim the body's hash; then the event, parsed, as
    a dict of protobuf field names with enums by name. Raises WebhookError saying which check failed, never echoing
    input; WebhookUnreadable for a body LiveKit signed that is not one we can read (a gap in history).

    livekit-api and PyJWT are loaded by the first webhook, not when the server is built: the first answer to an MCP
    client needs neither (the cold start of bench/README.md)."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self._key = api_key
        self._secret = api_secret
        self._verifier: api.TokenVerifier | None = None  # made by the first webhook

    def signed(self, token: str) -> str:
        """The token's `sha256` claim, once its signature, issuer and expiry are checked."""
        import jwt

        from livekit_mcp.errors import WebhookError

        if self._verifier is None:
            self._verifier = api.TokenVerifier(self._key, self._secret)
        try:
            with short_secrets_allowed():
                claims = self._verifier.verify(token)
        except jwt.ExpiredSignatureError:
            raise WebhookError("the webhook's token has expired (a stale or replayed request)") from None
        except jwt.InvalidIssuerError:
            raise WebhookError(f"the webhook is signed for another API key, not '{self._key}'") from None
        except jwt.PyJWTError:
            raise WebhookError("the webhook's token is not signed with this server's API secret") from None
        if not claims.sha256:
            raise WebhookError("the webhook's token has no body hash: not one LiveKit's notifier signs")
        return claims.sha256

    def __call__(self, body: bytes, token: str) -> dict[str, Any]:
        from google.protobuf import json_format

        from livekit_mcp.errors import WebhookError, WebhookUnreadable

        try:
            claimed = base64.b64decode(self.signed(token), validate=True)
        except binascii.Error:
            raise WebhookError("the webhook's body does not match the hash it was signed with") from None
        if not hmac.compare_digest(hashlib.sha256(body).digest(), claimed):
            raise WebhookError("the webhook's body does not match the hash it was signed with")
        # From here the body is LiveKit's, as it signed it: what cannot be read is a gap, not a forgery.
        try:
            parsed = json.loads(body)
        except UnicodeDecodeError:
            raise WebhookUnreadable("not a LiveKit webhook body (not UTF-8)") from None
        except ValueError:
            raise WebhookUnreadable("not a LiveKit webhook body (not JSON)") from None
        if not isinstance(parsed, dict):
            raise WebhookUnreadable("not a LiveKit webhook body (not a WebhookEvent)")
        _leave_out_what_is_not_kept(parsed)
        try:
            event = json_format.ParseDict(parsed, api.WebhookEvent(), ignore_unknown_fields=True)
        except json_format.ParseError:
            raise WebhookUnreadable("not a LiveKit webhook body (not a WebhookEvent)") from None
        return json_format.MessageToDict(event, preserving_proto_field_name=True)


def _leave_out_what_is_not_kept(event: dict[str, Any]) -> None:
    """Metadata and a participant's own attributes, which history never keeps, dropped before the protobuf parse:
    they are most of a large webhook (up to 1 MiB of metadata), and of what parsing it would cost."""
    for part in ("room", "participant"):
        found = event.get(part)
        if isinstance(found, dict):
            found.pop("metadata", None)
            attributes = found.get("attributes")
            if isinstance(attributes, dict):
                found["attributes"] = {k: v for k, v in attributes.items() if str(k).startswith(KEPT_ATTRIBUTES)}


def webhook_verifier(api_key: str, api_secret: str) -> WebhookVerifier:
    return WebhookVerifier(api_key, api_secret)
