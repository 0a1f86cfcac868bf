"""Confirmation of destructive actions.

A destructive tool first works out its `Plan`: what it would do and to whom (the blast radius). Then:
- confirmation off: it acts.
- a client that can elicit: the tool's resolver asks the user (the SDK's `Resolve`/`Elicit`, which works on both
  protocol eras) before the tool body runs; deleting a room asks for its name to be typed.
- any other client (a bot, a script): the first call changes nothing and returns the plan with a `confirm_token`;
  the same call with that token acts. The token is an HMAC over the tool, its arguments, the plan's targets (by
  sid: for a room, the room and everyone in it) and the principal it was issued to, with an expiry: it carries no
  server-side state, so any replica sharing the key can check it, and it stops matching once the targets changed
  (a participant who rejoined, someone who joined the room, a room recreated) or in another principal's hands.

Both are bound to the plan: the tool works the plan out again right before acting, and acts only if it is the
one the user was asked about (its `ref`, shown with the question) or the token was issued for. A changed plan is
put to the user again (2025-11-25 era; at 2026-07-28 the SDK re-asks by itself, as the question carries the ref).
Then `acting` reserves one of max_destructive_per_minute and writes the audit log's `attempted` line before the
change is sent; the reservation is given back if the action did not happen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp.server.mcpserver import Context, Elicit
from mcp.server.mcpserver.resolve import AcceptedElicitation, ElicitationResult
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from livekit_mcp import audit
from livekit_mcp.errors import (
    BadAnswer,
    InvalidInput,
    LiveKitError,
    LiveKitMCPError,
    PolicyRefusal,
    Timeout,
    Unreachable,
)
from livekit_mcp.models import iso
from livekit_mcp.policy import WINDOW, Policy
from livekit_mcp.projects import current_name
from livekit_mcp.service import caller_of
from livekit_mcp.store import MemoryStore, Store

Outcome = Literal["done", "confirmation_required", "declined", "cancelled", "changed"]
"""`changed` stays inside: the plan differs from the one the user was asked about, so they are asked again."""
INPUT_REQUIRED_VERSION = "2026-07-28"
"""From this protocol version on, elicitation is a round trip of the call (the SDK's `_uses_input_required`)."""
MAX_ASKS = 3
"""How often a user is asked about a plan that keeps changing before the call gives up."""
NOT_ASKED = "not asked"
"""What a resolver returns when it does not ask (confirmation off, a token given, or a client that cannot elicit)."""


class Consent(BaseModel):
    confirm: bool = Field(description="Go ahead?")


class TypedName(BaseModel):
    room: str = Field(description="Type the room's name to delete it.")


@dataclass
class Plan:
    """What a destructive call would do, worked out before anything changes."""

    tool: str
    room: str
    args: dict[str, Any]
    targets: list[str]
    """The sids and ids it would hit: bound into the confirm token, so a changed target voids it."""
    question: str
    """The blast radius in words: what the user is asked, and what a preview shows."""
    disconnects: dict[str, int] = field(default_factory=dict)
    """Participants it would disconnect, by kind (for the protected_kinds rule)."""
    type_to_confirm: str | None = None
    project: str = field(default_factory=current_name)
    """The project it acts on ("" the unnamed one): named in the question and bound into the token."""

    @property
    def ref(self) -> str:
        """Short digest of the project, tool, arguments and targets: what an answer of the user is bound to."""
        return _b64(_digest([self.project, self.tool, self.args, sorted(self.targets)]))[:10]

    @property
    def where(self) -> str:
        """The project, for texts naming it: "" when it has no name."""
        return f"[project {self.project}] " if self.project else ""


class PlanChanged(LiveKitMCPError):
    """What was confirmed is no longer what the call would do, and the user cannot be asked again in this call."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(
            f"not done: what was confirmed changed before it could be done; now: {plan.question} Nothing was "
            f"changed; call {plan.tool} again to confirm what it would do now"
        )


_asked: ContextVar[str | None] = ContextVar("asked_plan", default=None)
_redeeming: ContextVar[str | None] = ContextVar("redeeming", default=None)
"""The confirm token this call was accepted with, until `acting` spends it."""
"""The ref of the plan the user was asked about in this call (set by the resolver, read by the tool body)."""


@dataclass
class Decision:
    outcome: Outcome
    confirm_token: str | None = None
    expires_at: str | None = None

    @property
    def proceed(self) -> bool:
        return self.outcome == "done"


def _digest(value: Any) -> bytes:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).digest()[:9]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Tokens:
    """Stateless confirm tokens: `v3.<expiry>.<project>.<args>.<targets>.<principal>.<hmac>` (the middle four are
    digests).

    The digests in clear let a refusal say why (other arguments, a changed target, another principal); the HMAC
    over all of it makes any edit, or a token from a server with another key, fail.
    """

    def __init__(self, key: bytes | None, ttl: float) -> None:
        self._key = key or secrets.token_bytes(32)
        self.ttl = ttl

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:18])

    @staticmethod
    def _parts(plan: Plan, principal: str) -> tuple[str, str, str, str]:
        return (
            _b64(_digest(plan.project)),
            _b64(_digest([plan.tool, plan.args])),
            _b64(_digest(sorted(plan.targets))),
            _b64(_digest(principal)),
        )

    def issue(self, plan: Plan, principal: str, now: float | None = None) -> tuple[str, int]:
        expiry = int((time.time() if now is None else now) + self.ttl)
        body = ".".join(("v3", str(expiry), *self._parts(plan, principal)))
        return f"{body}.{self._mac(body)}", expiry

    def check(self, token: str, plan: Plan, principal: str, now: float | None = None) -> None:
        """Refuse (InvalidInput on confirm_token) a token that is not for exactly this call on these targets by
        this principal."""
        again = f"call {plan.tool} again without confirm_token for a new one"
        parts = token.split(".")
        if not token.isascii() or len(parts) != 7 or parts[0] != "v3" or not parts[1].isdigit():
            raise InvalidInput("confirm_token", f"not a token this server issued; {again}")
        body, mac = ".".join(parts[:6]), parts[6]
        if not hmac.compare_digest(mac.encode(errors="replace"), self._mac(body).encode()):
            raise InvalidInput("confirm_token", f"not a token this server issued, or altered; {again}")
        project_digest, args_digest, targets_digest, principal_digest = self._parts(plan, principal)
        if parts[5] != principal_digest:
            raise InvalidInput("confirm_token", f"it was issued to another principal; {again}")
        if parts[2] != project_digest:
            here = f"project '{plan.project}'" if plan.project else "the default project"
            raise InvalidInput("confirm_token", f"it was issued for another project, not {here}; {again}")
        if parts[3] != args_digest:
            raise InvalidInput("confirm_token", f"it was issued for another call or other arguments; {again}")
        if parts[4] != targets_digest:
            raise InvalidInput(
                "confirm_token",
                f"the target changed since it was issued (someone joined, left, rejoined or was recreated); {again}",
            )
        if int(parts[1]) < (time.time() if now is None else now):
            raise InvalidInput("confirm_token", f"it expired (tokens last {self.ttl:g} s); {again}")


def can_elicit(ctx: Context) -> bool:
    """Whether the client declared form elicitation (a bare `elicitation: {}` counts, as in the SDK)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


@dataclass
class Guard:
    """The guardrails of destructive tools: policy, confirmation mode and tokens."""

    policy: Policy
    tokens: Tokens
    confirm: Literal["auto", "off"] = "auto"
    shared: Store | None = None
    """The store replicas share (SQLite or Redis): a token is redeemed once across all of them, and the
    destructive-action budget is theirs together. None: this process alone, which counts its own."""
    project: str = ""
    """The project it guards: its budget in the shared store is its own."""
    _own: MemoryStore = field(default_factory=MemoryStore, init=False, repr=False)

    def _check_policy(self, plan: Plan) -> None:
        self.policy.check_room(plan.room, changes=True)
        self.policy.check_disconnect(plan.room, plan.disconnects)
        self.policy.check_rate()

    async def ask(
        self,
        ctx: Context,
        confirm_token: str,
        make_plan: Callable[[], Awaitable[tuple[Plan, Any]]],
        schema: type[BaseModel],
    ) -> Elicit[Any] | str:
        """For a tool's resolver: the question to put to the user, or NOT_ASKED."""
        if self.confirm == "off" or confirm_token or not can_elicit(ctx):
            return NOT_ASKED
        try:
            plan, _ = await make_plan()
            self._check_policy(plan)  # never ask a human to approve what policy refuses anyway
        except LiveKitMCPError:
            # Not asked: the tool body meets the same refusal or error, and the audit log records it.
            return NOT_ASKED
        _asked.set(plan.ref)
        return Elicit(_question(plan), schema)

    async def ask_again(self, ctx: Context, plan: Plan, schema: type[BaseModel]) -> ElicitationResult[Any]:
        """Put a plan that changed since the user said yes to them again, or raise PlanChanged if this call
        cannot ask (at 2026-07-28 questions are asked only by resolvers, between rounds)."""
        version = ctx.protocol_version
        if (version is not None and is_version_at_least(version, INPUT_REQUIRED_VERSION)) or not can_elicit(ctx):
            raise PlanChanged(plan)
        _asked.set(plan.ref)
        return await ctx.elicit("It changed since you were asked. " + _question(plan), schema)

    def decide(self, ctx: Context, plan: Plan, answer: ElicitationResult[Any], confirm_token: str) -> Decision:
        """Whether to act now, from the policy, the user's answer (to this very plan) or the token."""
        audit.note(before={"targets": plan.targets, "plan": plan.question})
        self._check_policy(plan)
        principal = caller_of(ctx.request_context.request, ctx.headers).principal
        return self._decision(plan, answer, confirm_token, principal)

    def _decision(self, plan: Plan, answer: ElicitationResult[Any], confirm_token: str, principal: str) -> Decision:
        if not isinstance(answer, AcceptedElicitation):
            return Decision("declined" if answer.action == "decline" else "cancelled")
        data = answer.data
        if isinstance(data, Consent | TypedName) and _asked.get() != plan.ref:
            return Decision("changed")
        if isinstance(data, Consent):
            return Decision("done" if data.confirm else "declined")
        if isinstance(data, TypedName):
            return Decision("done" if data.room == plan.type_to_confirm else "declined")
        if self.confirm == "off":
            return Decision("done")
        if confirm_token:
            self.tokens.check(confirm_token, plan, principal)
            _redeeming.set(confirm_token)  # spent by `acting`, right before the action is sent
            return Decision("done")
        token, expiry = self.tokens.issue(plan, principal)
        return Decision("confirmation_required", token, iso(expiry))

    @asynccontextmanager
    async def acting(self) -> AsyncIterator[None]:
        """Around sending a confirmed action: reserve a rate slot, write the audit log's attempted line, and give
        the slot back if the action did not happen (refused by LiveKit, or never sent)."""
        stamp = self.policy.reserve()
        slot: str | None = None
        redeemed: str | None = None
        try:
            redeemed = await self._redeem(_redeeming.get())
            slot = await self._take_shared_slot()
            audit.attempt()
            yield
        except BaseException as exc:
            if not _may_have_happened(exc):  # given back: the budget counts actions, a token acts once
                self.policy.release(stamp)
                if slot is not None and self.shared is not None:
                    await self.shared.give_back(slot)
                if redeemed is not None:
                    await (self.shared or self._own).unredeem(redeemed)
            raise

    async def _redeem(self, token: str | None) -> str | None:
        """A confirm token acts once: a second use, on this replica or another sharing the store, is refused.
        The key it was redeemed under, to give it back if its action did not happen."""
        if not token:
            return None
        used = self.shared or self._own
        key = hashlib.sha256(token.encode()).hexdigest()
        if not await used.redeem_once(key, self.tokens.ttl + 60):  # past its expiry the token is refused anyway
            raise InvalidInput("confirm_token", "it was already used; a token acts once. Call again without it")
        return key

    async def _take_shared_slot(self) -> str | None:
        limit = self.policy.max_destructive_per_minute
        if not limit or self.shared is None:
            return None
        slot = await self.shared.take_slot(WINDOW, limit, self.project)
        if slot is None:
            raise PolicyRefusal(
                "max_destructive_per_minute",
                f"{limit} destructive actions in the last minute already, across the replicas sharing the store",
            )
        return slot


def _may_have_happened(exc: BaseException) -> bool:
    """Whether a failed action may still have changed something: LiveKit's own error answers say it did not."""
    if isinstance(exc, Timeout | Unreachable | BadAnswer):
        return True
    return not isinstance(exc, LiveKitError | InvalidInput | audit.AuditUnavailable)


def _question(plan: Plan) -> str:
    ask = " Type the room's name to confirm." if plan.type_to_confirm else " Go ahead?"
    return f"{plan.where}{plan.question}{ask} (plan {plan.ref})"


def stopped_text(plan: Plan, decision: Decision) -> str:
    """What a call that did nothing says, and how to go ahead."""
    if decision.outcome == "confirmation_required":
        return (
            f"Not done yet: confirmation required. {plan.where}{plan.question} To go ahead, call {plan.tool} again "
            f"with the same arguments and confirm_token='{decision.confirm_token}' (valid until {decision.expires_at})."
        )
    return f"Not done: the user {decision.outcome} it. Nothing was changed. ({plan.where}{plan.question})"
