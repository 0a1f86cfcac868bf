"""The AI mode: a question in plain words (a mention or a DM), answered by a model using our tools.

The model gets the server's tools as Anthropic tool definitions, without `confirm_token`: it can ask what a
destructive tool would do, never make it happen. Such a call goes to the server without a token, and its
`confirmation_required` becomes the same Confirm / Cancel buttons `/livekit` shows, for a person; the model is told
that a person was asked, and never sees the token (every tool answer it reads has confirm tokens blanked out).

Nor does it see the other secrets a tool hands out, join tokens and stream keys (`for_model`): a model provider is
not where they belong, and the model could repeat them into a channel. The person is told, under the answer, where
to get what was withheld.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anthropic
from mcp.types import Tool

from livekit_mcp.service import failure_summary
from livekit_mcp.slack.blocks import Block, escape
from livekit_mcp.slack.commands import Commands, Person
from livekit_mcp.slack.mcp_client import Answer, withheld

log = logging.getLogger(__name__)

SYSTEM = """\
You help a team operate LiveKit from Slack, with tools that read and change its rooms. Answer briefly, in Slack's
mrkdwn. Destructive tools (removing people or agents, deleting rooms) are never done by you: calling one shows the
person Confirm / Cancel buttons with what it would do, and they decide. Say so, and do not call it twice. Join
tokens and stream keys are withheld from you: the person is told under your answer where to get them."""
MAX_TOKENS = 1024

PostButtons = Callable[[list[Block]], Awaitable[None]]


def tool_definitions(tools: list[Tool], may_change: bool, pinned: bool = False) -> list[dict[str, Any]]:
    """Anthropic tool definitions of the tools this person may use here, without the confirm token. `pinned` (the
    app has one project, `--project`): without the `project` argument either, and without the tools that take none
    (list_projects), since every call names the app's project."""
    offered = []
    hidden = {"confirm_token", "project"} if pinned else {"confirm_token"}
    for tool in tools:
        read_only = bool(tool.annotations and tool.annotations.read_only_hint)
        if not read_only and not may_change:
            continue
        schema = dict(tool.input_schema)
        if pinned and "project" not in dict(schema.get("properties", {})):
            continue
        properties = {k: v for k, v in dict(schema.get("properties", {})).items() if k not in hidden}
        schema["properties"] = properties
        if "required" in schema:
            schema["required"] = [r for r in schema["required"] if r not in hidden]
        offered.append({"name": tool.name, "description": tool.description or tool.name, "input_schema": schema})
    return offered


JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
"""A JSON Web Token (a join token) wherever it is in a text: withheld even where the structured content names none."""
MIN_SECRET = 8
"""A shorter value is not the secret (list_ingress shows a stream key's last 4 characters)."""


def _secrets(data: object) -> Iterator[tuple[str, str]]:
    """The join tokens and stream keys in a tool's structured content, each with where the person can get it."""
    if isinstance(data, list):
        for item in data:
            yield from _secrets(item)
        return
    if not isinstance(data, dict):
        return
    token, key = data.get("token"), data.get("stream_key")
    if isinstance(token, str) and len(token) >= MIN_SECRET:
        room, identity = escape(str(data.get("room", "ROOM"))), escape(str(data.get("identity", "IDENTITY")))
        make = f"`lk token create --join --room {room} --identity {identity}`"
        yield token, f"The join token for {identity} in {room} is not shown here or to the model: make one with {make}."
    if isinstance(key, str) and len(key) >= MIN_SECRET:
        ingress = escape(str(data.get("ingress_id", "")))
        yield key, f"The stream key of ingress {ingress} is not shown here or to the model: `lk ingress list` shows it."
    for value in data.values():
        if isinstance(value, dict | list):
            yield from _secrets(value)


def for_model(answer: Answer) -> tuple[str, list[str]]:
    """`answer`'s text as the model may read it (no confirm token, join token or stream key), and the notes that
    tell the person where to get what was withheld."""
    text, notes = withheld(answer.text), []
    for secret, note in _secrets(answer.data):
        text = text.replace(secret, "(withheld from the model; the person is told where to get it)")
        notes.append(note)
    if JWT.search(text):
        text = JWT.sub("(a token, withheld from the model)", text)
        notes.append("A token was withheld from the model and is not shown here.")
    return text, notes


class Assistant:
    """One question, one loop: the model asks for tools, we call them for the person, until it answers."""

    def __init__(self, commands: Commands, client: anthropic.AsyncAnthropic, model: str, max_turns: int) -> None:
        self._commands = commands
        self._client = client
        self._model = model
        self._max_turns = max_turns

    async def answer(self, question: str, person: Person, channel: str, post_buttons: PostButtons) -> str:
        """The model's answer to `question`, in words; a destructive step it proposes is posted as buttons."""
        may_change = await self._commands.access.refusal(person, channel) is None
        try:
            listed = await self._commands.tools.tools(person.on_behalf_of)
        except Exception as exc:
            log.warning("listing the tools failed: %s", failure_summary(exc))
            return "livekit-mcp could not be reached to list its tools; try again."
        destructive = {t.name for t in listed if t.annotations and t.annotations.destructive_hint}
        changes = {t.name for t in listed if not (t.annotations and t.annotations.read_only_hint)}
        definitions = tool_definitions(listed, may_change, pinned=self._commands.tools.project is not None)
        offered = {d["name"] for d in definitions}
        messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
        notes: list[str] = []  # where to get what was withheld from the model, said under the answer
        for _ in range(self._max_turns):
            try:
                reply = await self._client.messages.create(
                    model=self._model,
                    max_tokens=MAX_TOKENS,
                    system=SYSTEM,
                    messages=messages,  # type: ignore[arg-type]
                    tools=definitions,  # type: ignore[arg-type]
                )
            except anthropic.APIError as exc:
                log.warning("the model could not answer: %s", type(exc).__name__)
                said = f"The model could not answer ({type(exc).__name__}); `/livekit help` works without it."
                return _with_notes(said, notes)
            uses = [block for block in reply.content if block.type == "tool_use"]
            said = "\n".join(block.text for block in reply.content if block.type == "text").strip()
            if not uses:
                return _with_notes(said or "(no answer)", notes)
            messages.append({"role": "assistant", "content": [block.model_dump() for block in reply.content]})
            results = []
            for use in uses:
                arguments = {k: v for k, v in dict(use.input).items() if k != "confirm_token"}
                if use.name in offered:
                    text, failed = await self._run(
                        use.name, arguments, person, channel, destructive, changes, post_buttons, notes
                    )
                else:  # a tool it was not given (a change, in a read-only channel or for a reader): refused here
                    text, failed = f"{use.name} is not available to this person in this channel.", True
                results.append({"type": "tool_result", "tool_use_id": use.id, "content": text, "is_error": failed})
            messages.append({"role": "user", "content": results})
        return _with_notes("I stopped after too many steps; ask again more precisely, or use `/livekit`.", notes)

    async def _run(
        self,
        tool: str,
        arguments: dict[str, Any],
        person: Person,
        channel: str,
        destructive: set[str],
        changes: set[str],
        post_buttons: PostButtons,
        notes: list[str],
    ) -> tuple[str, bool]:
        if tool in changes and tool not in destructive:
            # A change made at once: the role as Slack has it now (the one the tools were offered by may be cached).
            refusal = await self._commands.access.refusal(person, channel, fresh=True)
            if refusal is not None:
                return f"Not done: {refusal}", True
        if tool in destructive:
            shown = await self._commands.destructive(tool, arguments, person, channel)
            await post_buttons(shown)
            what = str(shown[0].get("text", {}).get("text", ""))  # the plan, or why there is none
            return withheld(
                f"Not done: a person was shown Confirm / Cancel buttons in Slack and decides. {what}"
            ), False
        answer = await self._commands.tools.call(tool, arguments, person.on_behalf_of)
        text, withheld_notes = for_model(answer)
        notes.extend(n for n in withheld_notes if n not in notes)
        return text, not answer.ok


def _with_notes(said: str, notes: list[str]) -> str:
    """The answer posted in Slack: the model's words, then where to get what was withheld from it."""
    return "\n\n".join([said, *(f"_{note}_" for note in notes)])
