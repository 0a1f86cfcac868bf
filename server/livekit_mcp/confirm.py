"""Confirmation of whatever can make someone leave a call, or otherwise needs a person's yes.

A tool that may make participants leave declares how to work out its `Plan`: what it would do, and everyone who
would leave for any reason (removed, their room deleted, replaced by a dial-out or ingress taking their identity,
asked to shut down by RPC or data message, transferred, their dispatch deleted). The flow (tools/_registry.py)
then, in one place for every such tool:
- checks policy on the plan (the room, the kinds of whoever leaves, the budget): refused before anyone is asked;
- asks, when the plan makes someone leave or the tool always asks: a client that can elicit is asked through the
  SDK's `Resolve`/`Elicit` (both protocol eras; deleting a room asks for its name to be typed); any other client (a
  bot, a script, the Slack app) gets the plan and a `confirm_token` as structured fields, and the same call with
  that token acts. The token is an HMAC over the project, the tool, its arguments, the plan's targets (by sid) and
  the principal, with an expiry: stateless, so any replica sharing the key checks it, and void once the targets
  changed or in another principal's hands;
- decides, works the plan out again when a person took time to answer (acting only on the plan they saw: a changed
  one is put to them again), reserves a slot of the budget, writes the audit log's `attempted` line, and acts;
  the slot and the token are given back if the action did not happen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from mcp.server.mcpserver import Context, Elicit
from mcp.server.mcpserver.resolve import AcceptedElicitation, ElicitationResult
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from livekit_mcp.audit import Record
from livekit_mcp.errors import (
    AuditUnavailable,
    BadAnswer,
    InvalidInput,
    LiveKitError,
    PlanChanged,
    PolicyRefusal,
    Timeout,
    Unreachable,
)
from livekit_mcp.models import Confirmable, Leaving, Participant, iso
from livekit_mcp.policy import Budget, Policy
from livekit_mcp.store import Store
from livekit_mcp.text import shown

T = TypeVar("T")
Outcome = Literal["done", "confirmation_required", "declined", "cancelled", "changed"]
"""`changed` stays inside: the plan differs from the one the user was asked about, so they are asked again."""
INPUT_REQUIRED_VERSION = "2026-07-28"
"""From this protocol version on, elicitation is a round trip of the call (the SDK's `_uses_input_required`)."""
MAX_ASKS = 3
"""How often a user is asked about a plan that keeps changing before the call gives up."""
NOT_ASKED = "not asked"
"""What the asking resolver returns when it does not ask (confirmation off, a token given, a client that cannot
elicit, a plan that makes nobody leave, or a plan that policy refuses: the body meets the refusal and records it)."""


class Consent(BaseModel):
    confirm: bool = Field(description="Go ahead?")


class TypedName(BaseModel):
    room: str = Field(description="Type the room's name to delete it.")


@dataclass
class Plan:
    """What a call would do, worked out before anything changes."""

    tool: str
    room: str
    args: dict[str, Any]
    targets: list[str]
    """The sids and ids it would hit: bound into the confirm token, so a changed target voids it."""
    question: str
    """The blast radius in words: what the user is asked, and what a preview shows."""
    leaving: list[Leaving] = field(default_factory=list)
    """Everyone who would leave the room, and why: what policy's protected_kinds is checked against."""
    type_to_confirm: str | None = None
    project: str = ""
    """The project it acts on ("" the unnamed one): named in the question and bound into the token."""

    @property
    def disconnects(self) -> dict[str, int]:
        """Who would leave, counted by kind."""
        return dict(Counter(p.kind for p in self.leaving))

    @property
    def ref(self) -> str:
        """Short digest of the project, tool, arguments and targets: what an answer of the user is bound to."""
        return _b64(_digest([self.project, self.tool, self.args, sorted(self.targets)]))[:10]

    @property
    def where(self) -> str:
        """The project, for texts naming it: "" when it has no name."""
        return f"[project {self.project}] " if self.project else ""

    @property
    def question_asked(self) -> str:
        ask = " Type the room's name to confirm." if self.type_to_confirm else " Go ahead?"
        return f"{self.where}{self.question}{ask} (plan {self.ref})"


@dataclass
class Planned(Generic[T]):
    """A plan, what was found working it out (handed to the tool's act), and the answer when nothing is done."""

    plan: Plan
    found: T
    preview: Confirmable


def leaving(p: Participant, why: str) -> Leaving:
    """`p` as someone a plan makes leave, for `why`."""
    return Leaving(identity=p.identity, kind=p.effective_kind, why=why, sid=p.sid)


def plan_changed(plan: Plan) -> PlanChanged:
    return PlanChanged(
        f"not done: what was confirmed changed before it could be done; now: {plan.question} Nothing was "
        f"changed; call {plan.tool} again to confirm what it would do now"
    )


@dataclass
class Decision:
    outcome: Outcome
    confirm_token: str | None = None
    expires_at: str | None = None
    typed: str | None = None
    """With `declined` for a typed-name confirmation: the name typed, which is not the one asked for."""

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

    def __init__(
        self, key: bytes | None, ttl: float, clock: Callable[[], float] = time.time, previous: Sequence[bytes] = ()
    ) -> None:
        self._key = key or secrets.token_bytes(32)
        self._previous = tuple(previous)
        """Keys still accepted while the key is rotated: a token signed under one checks, none is signed with them."""
        self.ttl = ttl
        self._clock = clock
        """Unix time now: injected by tests that would otherwise wait for a token to expire."""

    def _mac(self, body: str, key: bytes | None = None) -> str:
        return _b64(hmac.new(key or self._key, body.encode(), hashlib.sha256).digest()[:18])

    def _signed(self, body: str, mac: str) -> bool:
        given = mac.encode(errors="replace")
        return any(hmac.compare_digest(given, self._mac(body, key).encode()) for key in (self._key, *self._previous))

    @staticmethod
    def _parts(plan: Plan, principal: str) -> tuple[str, str, str, str]:
        return (
            _b64(_digest(plan.project)),
            _b64(_digest([plan.tool, plan.args])),
            _b64(_digest(sorted(plan.targets))),
            _b64(_digest(principal)),
        )

    def issue(self, plan: Plan, principal: str, now: float | None = None) -> tuple[str, int]:
        expiry = int((self._clock() if now is None else now) + self.ttl)
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
        if not self._signed(body, mac):
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
        if int(parts[1]) < (self._clock() if now is None else now):
            raise InvalidInput("confirm_token", f"it expired (tokens last {self.ttl:g} s); {again}")


def can_elicit(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared form elicitation (a bare `elicitation: {}` counts, as in the SDK)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def answered_within_call(ctx: Context[Any, Any]) -> bool:
    """Whether a question can be put to the user in the middle of this call (2025-11-25 era, a client that
    elicits); from 2026-07-28 on, questions are asked only between rounds, by resolvers."""
    version = ctx.protocol_version
    return can_elicit(ctx) and not (version is not None and is_version_at_least(version, INPUT_REQUIRED_VERSION))


@dataclass
class Guard:
    """The guardrails of a project's confirmed calls: policy, confirmation mode, tokens and the budget."""

    policy: Policy
    tokens: Tokens
    budget: Budget
    redeemed: Store
    """Where a confirm token is marked used: the store replicas share (once across all of them), or our own."""
    confirm: Literal["auto", "off"] = "auto"

    async def check(self, plan: Plan) -> None:
        """Refuse what policy forbids: the room, whoever would leave, the budget."""
        self.policy.check_room(plan.room, changes=True)
        self.policy.check_leaving(plan.room, plan.disconnects)
        await self.budget.check()

    def question(
        self, ctx: Context[Any, Any], confirm_token: str, plan: Plan, schema: type[BaseModel]
    ) -> Elicit[Any] | str:
        """For the asking resolver: the question to put to the user, or NOT_ASKED."""
        if self.confirm == "off" or confirm_token or not can_elicit(ctx):
            return NOT_ASKED
        return Elicit(plan.question_asked, schema)

    async def ask_again(self, ctx: Context[Any, Any], plan: Plan, schema: type[BaseModel]) -> ElicitationResult[Any]:
        """Put a plan that changed since the user said yes to them again, or raise PlanChanged if this call
        cannot ask."""
        if not answered_within_call(ctx):
            raise plan_changed(plan)
        return await ctx.elicit("It changed since you were asked. " + plan.question_asked, schema)

    def decide(
        self, plan: Plan, answer: ElicitationResult[Any], confirm_token: str, principal: str, asked_ref: str
    ) -> Decision:
        """Whether to act now, from the user's answer (to the plan of `asked_ref`) or the token."""
        if not isinstance(answer, AcceptedElicitation):
            return Decision("declined" if answer.action == "decline" else "cancelled")
        data = answer.data
        if isinstance(data, Consent | TypedName) and asked_ref != plan.ref:
            return Decision("changed")
        if isinstance(data, Consent):
            return Decision("done" if data.confirm else "declined")
        if isinstance(data, TypedName):
            if data.room == plan.type_to_confirm:
                return Decision("done")
            return Decision("declined", typed=data.room)
        if self.confirm == "off":
            return Decision("done")
        if confirm_token:
            self.tokens.check(confirm_token, plan, principal)
            return Decision("done")
        token, expiry = self.tokens.issue(plan, principal)
        return Decision("confirmation_required", token, iso(expiry))

    @asynccontextmanager
    async def acting(self, confirm_token: str, record: Record) -> AsyncIterator[None]:
        """Around sending a confirmed action: spend the token, reserve a budget slot, write the audit log's
        attempted line; give the slot and the token back if the action did not happen (refused by LiveKit, or
        never sent)."""
        slot: str | None = None
        redeemed: str | None = None
        try:
            redeemed = await self._redeem(confirm_token)
            slot = await self.budget.reserve()
            record.attempt()
            yield
        except BaseException as exc:
            if not _may_have_happened(exc):
                await self.budget.release(slot)
                if redeemed is not None:
                    await self.redeemed.unredeem(redeemed)
            raise

    async def _redeem(self, token: str) -> str | None:
        """A confirm token acts once: a second use, on this replica or another sharing the store, is refused.
        The key it was redeemed under, to give it back if its action did not happen."""
        if not token:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        if not await self.redeemed.redeem_once(key, self.tokens.ttl + 60):  # past its expiry it is refused anyway
            raise InvalidInput("confirm_token", "it was already used; a token acts once. Call again without it")
        return key


def _may_have_happened(exc: BaseException) -> bool:
    """Whether a failed action may still have changed something: LiveKit's own error answers say it did not."""
    if isinstance(exc, Timeout | Unreachable | BadAnswer):
        return True
    return not isinstance(exc, LiveKitError | InvalidInput | AuditUnavailable | PolicyRefusal)


def stopped_text(plan: Plan, decision: Decision) -> str:
    """What a call that did nothing says, and how to go ahead."""
    if decision.outcome == "confirmation_required":
        return (
            f"Not done yet: confirmation required. {plan.where}{plan.question} To go ahead, call {plan.tool} again "
            f"with the same arguments and confirm_token='{decision.confirm_token}' (valid until {decision.expires_at})."
        )
    if decision.typed is not None:  # not a "no": a slip of the keyboard, which the user should hear as such
        return (
            f"Not done: the name typed, '{shown(decision.typed)}', is not the room's name "
            f"'{shown(plan.type_to_confirm)}'. Nothing was changed. Call {plan.tool} again and type "
            f"'{shown(plan.type_to_confirm)}' exactly to go ahead. ({plan.where}{plan.question})"
        )
    return f"Not done: the user {decision.outcome} it. Nothing was changed. ({plan.where}{plan.question})"
