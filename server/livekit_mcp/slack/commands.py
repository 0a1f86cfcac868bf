"""What `/livekit` does: subcommands onto tools, who may change things where, and confirmations as buttons.

Nothing here speaks Slack's wire format (Bolt does, in `app.py`): a command comes in as words and a `Person`, and
goes out as Block Kit blocks. A destructive call first answers `confirmation_required` with a confirm token; the
token stays in this process (`Confirmations`), never in Slack or before a model, and a click redeems it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from livekit_mcp.slack import blocks
from livekit_mcp.slack.blocks import Block, escape
from livekit_mcp.slack.mcp_client import Answer, LiveKitTools, withheld
from livekit_mcp.slack.settings import SlackSettings
from livekit_mcp.text import shown

GROUP_CACHE = 60.0
"""Seconds a user group's members are kept before Slack is asked again, where nothing is changed on the answer
(showing a plan and its buttons, choosing the tools offered to the model). Where something is changed (a Confirm
click, a change the model makes), the role is asked of Slack afresh: someone taken out of the group loses the
role at once. The cache spares Slack's usergroups.users.list (rate limit Tier 2, about 20 a minute) the reads."""

HELP = """\
*`/livekit` commands* (answers only you see):
• `rooms`: the rooms, with how many are in each
• `who ROOM`: who is in a room
• `agent ROOM`: the AI agent(s) in a room
• `history ROOM`: what happened in a room (when room history is kept)
• `remove ROOM IDENTITY`: disconnect a participant (asks for confirmation)
• `remove-agent ROOM`: take the agent(s) out of a room, dispatches too (asks for confirmation)
• `close ROOM`: delete a room, disconnecting everyone (asks for confirmation)
• `help`: this"""


@dataclass(frozen=True)
class Person:
    """A Slack user: who asked or clicked, as the server's on-behalf-of records them."""

    user_id: str
    name: str = ""

    @property
    def on_behalf_of(self) -> str:
        return f"slack:{self.user_id}" + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True)
class Command:
    tool: str
    params: tuple[str, ...]
    changes: bool = False


COMMANDS = {
    "rooms": Command("list_rooms", ()),
    "who": Command("list_participants", ("room",)),
    "agent": Command("find_agent", ("room",)),
    "history": Command("room_history", ("room",)),
    "remove": Command("remove_participant", ("room", "identity"), changes=True),
    "remove-agent": Command("remove_agent", ("room",), changes=True),
    "close": Command("delete_room", ("room",), changes=True),
}
LIST_ARGS = {"list_rooms": {"limit": 500}, "list_participants": {"limit": 1000}, "room_history": {"limit": 500}}


@dataclass
class Pending:
    """A destructive request waiting for a click: the token that acts, and who may give it."""

    tool: str
    arguments: dict[str, Any]
    confirm_token: str
    expires_at: int
    asker: Person
    question: str
    channel: str


@dataclass
class Confirmations:
    """Pending requests of this process, by a random id (the buttons' value); a click takes one out."""

    _pending: dict[str, Pending] = field(default_factory=dict)

    def add(self, pending: Pending) -> str:
        now = time.time()
        for key in [k for k, p in self._pending.items() if p.expires_at < now - 3600]:  # long past: forget
            del self._pending[key]
        key = secrets.token_urlsafe(12)
        self._pending[key] = pending
        return key

    def get(self, key: str) -> Pending | None:
        return self._pending.get(key)

    def take(self, key: str) -> Pending | None:
        return self._pending.pop(key, None)


GroupMembers = Callable[[str], Awaitable[set[str]]]


class Access:
    """Who may do what where: the write role (users or user groups), the approvers, the change channels."""

    def __init__(self, settings: SlackSettings, members: GroupMembers) -> None:
        self._settings = settings
        self._members = members
        self._groups: dict[str, tuple[float, set[str]]] = {}

    async def _in(self, patterns: list[str], user: str, fresh: bool) -> bool:
        if "*" in patterns or user in patterns:
            return True
        for group in (p for p in patterns if p.startswith("S")):
            cached = self._groups.get(group)
            if fresh or cached is None or time.monotonic() - cached[0] > GROUP_CACHE:
                cached = (time.monotonic(), await self._members(group))
                self._groups[group] = cached
            if user in cached[1]:
                return True
        return False

    async def refusal(self, person: Person, channel: str, *, fresh: bool = False) -> str | None:
        """Why `person` may not run a change in `channel`, or None when they may. `fresh`: the user groups asked
        of Slack now, not from the cache (when the answer changes something)."""
        if not self._settings.may_change_in(channel):
            return "This channel is read-only for `/livekit`: changes run only in the channels configured for them."
        if not await self._in(self._settings.writers, person.user_id, fresh):
            return "You have the read role for LiveKit here: ask someone with the write role."
        return None

    async def may_cancel(self, person: Person, pending: Pending) -> bool:
        """Whether `person` may cancel `pending` (which changes nothing: the cached groups do): its asker, or an
        approver."""
        return person.user_id == pending.asker.user_id or await self._in(
            self._settings.approvers, person.user_id, False
        )

    async def confirm_refusal(self, person: Person, pending: Pending) -> str | None:
        """Why `person` may not confirm `pending` now, or None: an approver may; its asker only while they still
        have the write role there (asked of Slack now: the role may have been taken away since they asked)."""
        if await self._in(self._settings.approvers, person.user_id, True):
            return None
        if person.user_id != pending.asker.user_id:
            return f"Only <@{pending.asker.user_id}> or an approver may answer this request."
        refusal = await self.refusal(person, pending.channel, fresh=True)
        return None if refusal is None else f"Not done: {refusal} (you may still cancel it)."


def plan_of(answer: Answer) -> str:
    """The blast radius a `confirmation_required` answer states: its `question` field (data, not the text meant for
    a model, which carries the token and how to use it)."""
    question = answer.data.get("question")
    return withheld(question) if isinstance(question, str) else "(the server did not say what it would do)"


class Commands:
    """`/livekit …` and its buttons, from words to blocks."""

    def __init__(self, tools: LiveKitTools, settings: SlackSettings, access: Access) -> None:
        self.tools = tools
        self.settings = settings
        self.access = access
        self.confirmations = Confirmations()

    async def run(self, text: str, person: Person, channel: str, offset: int = 0) -> list[Block]:
        words = text.split()
        name = words[0].lower() if words else "help"
        command = COMMANDS.get(name)
        if command is None:
            unknown = [] if name == "help" else [blocks.section(f"`{escape(name)}` is not a `/livekit` command.")]
            return [*unknown, blocks.section(HELP)]
        values = words[1:]
        if len(values) != len(command.params):
            usage = " ".join(p.upper() for p in command.params)
            return [blocks.section(f"Usage: `/livekit {name} {usage}`"), blocks.section(HELP)]
        arguments: dict[str, Any] = dict(zip(command.params, values, strict=True))
        if command.changes:
            refusal = await self.access.refusal(person, channel)
            if refusal is not None:
                return [blocks.section(f"Not done: {refusal}")]
            return await self.destructive(command.tool, arguments, person, channel)
        answer = await self.tools.call(
            command.tool, {**arguments, **LIST_ARGS.get(command.tool, {})}, person.on_behalf_of
        )
        if not answer.ok:
            return [blocks.section(f":x: {escape(_first_line(answer.text))}")]
        more = {"c": text.strip()}
        return _listing(command.tool, answer, offset, self.settings.page_size, more)

    async def destructive(self, tool: str, arguments: dict[str, Any], person: Person, channel: str) -> list[Block]:
        """Ask the server what `tool` would do; its confirmation becomes buttons (or its answer, if it just acted)."""
        answer = await self.tools.call(tool, arguments, person.on_behalf_of)
        if not answer.ok:
            return [blocks.section(f":x: {escape(_first_line(answer.text))}")]
        token = answer.data.get("confirm_token")
        if answer.outcome != "confirmation_required" or not isinstance(token, str):
            return blocks.outcome(f"*{tool}*: {answer.outcome}.", withheld(answer.text))
        question = plan_of(answer)
        expires_at = _epoch(answer.data.get("expires_at"))
        key = self.confirmations.add(Pending(tool, arguments, token, expires_at, person, question, channel))
        return blocks.confirmation(question, person.user_id, expires_at, key)

    async def click(self, key: str, confirmed: bool, person: Person) -> tuple[list[Block] | None, str | None]:
        """A Confirm or Cancel click: the message's new blocks (None: unchanged) and a note for the clicker alone."""
        closed = "This request is no longer open (already answered, or the app restarted). Run the command again."
        pending = self.confirmations.get(key)
        if pending is None:
            return None, closed
        if confirmed:  # the role as Slack has it now: what is about to change depends on it
            refusal = await self.access.confirm_refusal(person, pending)
        elif not await self.access.may_cancel(person, pending):
            refusal = f"Only <@{pending.asker.user_id}> or an approver may answer this request."
        else:
            refusal = None
        if refusal is not None:
            return None, refusal
        if self.confirmations.take(key) is None:  # another click took it while we looked the clicker up
            return None, closed
        if not confirmed:
            return blocks.outcome(f"Cancelled by <@{person.user_id}>: nothing was changed.", pending.question), None
        if time.time() > pending.expires_at:
            headline = f"Expired before <@{person.user_id}> confirmed it: nothing was changed. Run the command again."
            return blocks.outcome(headline, pending.question), None
        arguments = {**pending.arguments, "confirm_token": pending.confirm_token}
        answer = await self.tools.call(pending.tool, arguments, person.on_behalf_of)
        if not answer.ok:
            return blocks.outcome(f":x: Not done: {escape(withheld(_first_line(answer.text)))}", pending.question), None
        headline = f":white_check_mark: Done, confirmed by <@{person.user_id}>."
        if answer.outcome != "done":
            headline = f"Not done ({answer.outcome}), confirmed by <@{person.user_id}>."
        return blocks.outcome(headline, withheld(answer.text)), None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "failed"


def _epoch(iso_time: object) -> int:
    try:
        return int(datetime.fromisoformat(str(iso_time).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return int(time.time())  # no expiry given: treat it as already due


def _listing(tool: str, answer: Answer, offset: int, size: int, more: dict[str, Any]) -> list[Block]:
    data = answer.data
    lines = [escape(line) for line in answer.text.strip().splitlines()]
    title, rows = lines[0], lines[1:]  # any other tool (room_history): its own lines
    if tool == "list_rooms":
        rooms = data.get("rooms", [])
        title = f"*{len(rooms)} room(s)*"
        rows = [f"*{escape(shown(r['name']))}*\n{r['participants']} participant(s)" for r in rooms]
    elif tool == "list_participants":
        people = data.get("participants", [])
        title = f"*{len(people)} participant(s) in {escape(shown(data.get('room', '')))}*"
        rows = [_participant(p) for p in people]
    elif tool == "find_agent":
        agents = data.get("agents", [])
        title = f"*{len(agents)} agent(s)*"
        rows = [
            f"*{escape(shown(a['identity']))}*\n{escape(shown(a.get('agent_name') or '(no name)'))} · "
            f"{escape(shown(a.get('state') or '?'))}"
            for a in agents
        ]
    return blocks.page(title, rows, offset, size, more)


def _participant(p: dict[str, Any]) -> str:
    detail = [p["kind"], p["state"]]
    if p.get("agent_name"):
        detail.append(f"agent {escape(shown(p['agent_name']))}")
    name = f" ({escape(shown(p['name']))})" if p.get("name") else ""
    # Rows come from the structured content, exact: shown() keeps a name's newline from starting a fake row.
    return f"*{escape(shown(p['identity']))}*{name}\n{' · '.join(detail)}"
