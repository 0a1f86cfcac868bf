"""The exception tree: every class this package raises on purpose, rooted in our own class.

    LiveKitMCPError                 the root; the CLI catches it once (one line, exit 2), and a tool's or a
     │                              resource's is converted once to what the model reads (app._Server)
     ├── ConfigurationError         the server cannot start or run as configured; one line, never a secret
     │    ├── ConfigFileError       the --config file cannot be read or names an unknown setting (config.py)
     │    ├── MissingCredentialsError   LiveKit credentials are needed and some are not set (config.py)
     │    ├── ProjectsError         lk's project file or [[projects]] cannot be served (projects.py)
     │    ├── AuthConfigError       the token settings cannot be used (auth.py)
     │    ├── MissingSlackSetting   a setting the Slack app's mode needs is not set (slack/settings.py)
     │    └── StartupError          anything else that stops the start (app.py)
     ├── InvalidInput               an argument is wrong; raised before anything is sent to LiveKit
     ├── PolicyRefusal              the server's policy forbids it (names the rule); nothing was changed
     ├── PlanChanged                what was confirmed changed before it could be done; nothing was changed
     ├── AuditUnavailable           the audit log cannot be written: no change is made (audit.py)
     ├── StoreError                 the history store is not ours, corrupt or down (store.py)
     ├── WebhookError               a webhook that is not LiveKit's or not for us: 4xx, never stored (history.py)
     │    └── WebhookUnreadable     one LiveKit signed that cannot be read: a gap in history, answered 200
     ├── ServerLost                 the Slack app's stdio server is gone; it is started again (slack/)
     ├── EgressOutputMissing        start_room_egress without LIVEKIT_MCP_EGRESS_OUTPUT
     └── LiveKitError               LiveKit answered with an error, or did not answer
          ├── NotFound
          │    ├── RoomNotFound
          │    ├── ParticipantNotFound
          │    └── DispatchNotFound
          ├── AuthenticationFailed  LiveKit rejected the API key or secret
          ├── PermissionDenied      the key is valid but lacks the grant for this call
          ├── Unreachable           no connection to the LiveKit URL (refused, DNS, TLS), or it broke mid-call
          ├── Timeout               no answer within our limit (the change may still have happened)
          ├── ServiceMissing        no SIP, egress or ingress service runs beside LiveKit
          ├── TransferFailed        LiveKit answered a SIP transfer without an error, yet with status failed
          └── ServerFailure         any other error: Twirp code, HTTP status, message
               ├── RoomNotLive      a listed room whose node did not answer a routed call (closing, node down)
               ├── TooLarge         the request body is over livekit-server's limit (413, 1.13.6 and later)
               ├── ClientTooOld     the participant's client cannot be moved (failed_precondition, 1.13.6 on)
               └── BadAnswer        an answer that is not LiveKit's (not protobuf, undecodable, too large)

The sandbox (an emulator of LiveKit, which imports nothing of the package) has its own: it answers as LiveKit
does, with Twirp errors (sandbox/_errors.py).

Foreign errors (`livekit.api.ServerError`, aiohttp errors, protobuf decode errors, timeouts) are mapped to
these in exactly one place, the LiveKit seam (`livekit_backend`). When a change's fate is unknown (a timeout, a
connection lost after the request went out, a garbled answer) the message says so and names the tool that
shows whether it happened: sending it again blindly could do it twice.
"""

from __future__ import annotations

from pathlib import Path


class LiveKitMCPError(Exception):
    """Base of every error this package raises on purpose; its message is written for the person or model
    reading it, in one line, without secrets."""


class ConfigurationError(LiveKitMCPError):
    """The server cannot start or run as configured; the message says which setting, file or entry."""


class ConfigFileError(ConfigurationError):
    """The --config file cannot be read or names a setting that does not exist."""


class MissingCredentialsError(ConfigurationError):
    """LiveKit credentials are needed and some are not set."""


class ProjectsError(ConfigurationError):
    """The projects cannot be served as configured: one line naming the file and the entry, never a secret."""


class AuthConfigError(ConfigurationError):
    """The token settings cannot be used; the message names the entry, never a token."""


class MissingSlackSetting(ConfigurationError):
    """A setting the chosen mode of the Slack app needs is not set; the message names it."""


class StartupError(ConfigurationError):
    """The server must not start as configured; the message says why, in one line."""


class PlanChanged(LiveKitMCPError):
    """What was confirmed is no longer what the call would do, and the user cannot be asked again in this call."""


class AuditUnavailable(LiveKitMCPError):
    def __init__(self, path: Path, reason: str, *, after: str | None = None) -> None:
        if after is None:
            super().__init__(f"the audit log {path} cannot be written ({reason}); no change was made")
        else:
            super().__init__(
                f"the call ended ({after}) but its line in the audit log {path} could not be written ({reason})"
            )


class StoreError(LiveKitMCPError):
    """The store cannot be used: not ours, corrupt, or down. The message says which, in one line."""


class WebhookError(LiveKitMCPError):
    """A webhook that is not LiveKit's, or not for us: the message says why, without echoing what was sent."""


class WebhookUnreadable(WebhookError):
    """A webhook LiveKit signed (its hash matches) whose body this server cannot read: a gap in history, not a
    refusal (livekit-server would take a 4xx as delivered)."""


class ServerLost(LiveKitMCPError):
    """The Slack app's stdio server is gone (crashed, killed); it is being started again."""


class InvalidInput(LiveKitMCPError):
    """An argument is not acceptable; nothing was sent to LiveKit."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"invalid '{field}': {problem}")


class PolicyRefusal(LiveKitMCPError):
    """A guardrail of this server's configuration forbids the call; nothing was sent to change anything."""

    def __init__(self, rule: str, problem: str) -> None:
        self.rule = rule
        super().__init__(f"refused by policy ({rule}): {problem}")


class LiveKitError(LiveKitMCPError):
    """LiveKit answered with an error, or did not answer."""


class NotFound(LiveKitError):
    """The thing the call is about does not exist."""


class RoomNotFound(NotFound):
    def __init__(self, room: str) -> None:
        self.room = room
        super().__init__(f"room '{room}' does not exist; list_rooms shows the rooms that do")


class ParticipantNotFound(NotFound):
    def __init__(self, room: str, identity: str) -> None:
        self.room, self.identity = room, identity
        super().__init__(
            f"participant '{identity}' is not in room '{room}'; list_participants(room='{room}') shows who is there"
        )


class DispatchNotFound(NotFound):
    def __init__(self, room: str, dispatch_id: str) -> None:
        self.room, self.dispatch_id = room, dispatch_id
        super().__init__(
            f"dispatch '{dispatch_id}' does not exist in room '{room}'; "
            f"list_dispatches(room='{room}') shows the dispatches that do"
        )


class AuthenticationFailed(LiveKitError):
    def __init__(self, url: str, api_key: str) -> None:
        super().__init__(
            f"LiveKit at {url} rejected the API key or secret (key '{api_key}'); "
            "check LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
        )


class PermissionDenied(LiveKitError):
    def __init__(self, url: str, api_key: str, method: str) -> None:
        super().__init__(
            f"LiveKit at {url} accepted the key '{api_key}' but it lacks the permission for {method}; "
            "use a key with room admin rights"
        )


def unsure(check: str | None) -> str:
    """The warning for a change whose outcome is unknown; `check` is the tool that shows whether it happened
    ("" when none can; None for a read, which needs no warning)."""
    if check is None:
        return ""
    how = f"call {check} to see whether it did" if check else "sending it again may deliver it twice"
    return f" The change may or may not have happened: {how} before trying again."


class Unreachable(LiveKitError):
    def __init__(
        self, url: str, reason: str, *, hint: str = "check LIVEKIT_URL and that the server is up", unsure: str = ""
    ) -> None:
        super().__init__(f"LiveKit at {url} is unreachable ({reason}); {hint}.{unsure}")


class Timeout(LiveKitError):
    def __init__(self, url: str, seconds: float, method: str, *, check: str | None) -> None:
        hint = unsure(check) if check is not None else " Try again, or raise LIVEKIT_MCP_TIMEOUT."
        super().__init__(f"LiveKit at {url} did not answer {method} within {seconds:g} s.{hint}")


class ServerFailure(LiveKitError):
    def __init__(self, method: str, code: str, status: int, message: str) -> None:
        self.code, self.status = code, status
        detail = f": {message}" if message else ""
        super().__init__(f"LiveKit refused {method} ({code}, HTTP {status}){detail}")


class RoomNotLive(ServerFailure):
    """LiveKit lists the room, but no node answered a call routed to it: it is closing, or its node is down."""

    def __init__(self, method: str, room: str) -> None:
        self.room = room
        self.code, self.status = "unavailable", 503
        LiveKitError.__init__(
            self,
            f"LiveKit lists room '{room}' but no LiveKit node answered {method} for it (the room is not live: it may "
            "be closing, or the node hosting it is down); nothing was changed. Try again in a few seconds; "
            "get_room shows whether it is still there.",
        )


class TooLarge(ServerFailure):
    """livekit-server 1.13.6 and later refuse a request body over 10 MiB (its `limit.max_api_request_body_size`)
    with a plain-text 413 before reading it."""

    def __init__(self, method: str) -> None:
        self.code, self.status = "request_too_large", 413
        LiveKitError.__init__(
            self,
            f"LiveKit refused {method} (HTTP 413): the request is larger than the server accepts (10 MiB by default, "
            "its limit.max_api_request_body_size); nothing was done. Send less at once.",
        )


class ClientTooOld(ServerFailure):
    """livekit-server 1.13.6 and later answer failed_precondition when the participant's client is too old to be
    moved to another room (MoveParticipant)."""

    def __init__(self, method: str, room: str, identity: str) -> None:
        self.code, self.status = "failed_precondition", 412
        LiveKitError.__init__(
            self,
            f"LiveKit cannot {method} '{identity}' in room '{room}': the participant's client SDK is too old to be "
            "moved; nothing was changed. The participant can leave and join the other room instead.",
        )


class BadAnswer(ServerFailure):
    """Something answered, but not as LiveKit does: a proxy, a web page, a broken body."""

    def __init__(self, url: str, method: str, status: int, reason: str, *, check: str | None) -> None:
        self.code, self.status = "bad_answer", status
        LiveKitError.__init__(
            self,
            f"{url} did not answer {method} as LiveKit does (HTTP {status}, {reason}); "
            f"check that LIVEKIT_URL is the LiveKit server itself, not a web page or a proxy.{unsure(check)}",
        )


class ServiceMissing(LiveKitError):
    """The SIP, egress or ingress service the call needs does not run beside this LiveKit server."""

    def __init__(self, url: str, service: str, method: str, message: str) -> None:
        self.service = service
        if message.endswith("(redis required)"):
            why = f"livekit-server runs without Redis, which its {service} service needs"
        else:
            why = (
                f"no {service} service is connected to it (livekit/{service.lower()} runs as its own process, "
                "sharing livekit-server's Redis)"
            )
        super().__init__(
            f"LiveKit's {service} service is not running at {url}: {method} was answered '{message}' because {why}; "
            "nothing was done."
        )


class TransferFailed(LiveKitError):
    """livekit-server 1.13.6 and later answer TransferSIPParticipant with the SIP service's outcome: a transfer can
    fail (rejected, not answered, …) without a Twirp error. The caller stays in the room."""

    def __init__(self, room: str, identity: str, transfer_to: str, reason: str, sip_status: str = "") -> None:
        self.reason = reason
        sip = f" (SIP {sip_status})" if sip_status else ""
        super().__init__(
            f"LiveKit did not transfer the call of '{identity}' in room '{room}' to {transfer_to}: {reason}{sip}; "
            "the caller is still in the room."
        )


class EgressOutputMissing(LiveKitMCPError):
    """start_room_egress was called on a server that has no recording output configured."""

    def __init__(self) -> None:
        super().__init__(
            "no recording output is configured: this server records only to the output set in "
            "LIVEKIT_MCP_EGRESS_OUTPUT (a file path for the egress service's storage, or an rtmp(s):// stream URL); "
            "storage credentials are never taken from chat"
        )
