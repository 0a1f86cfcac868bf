"""The AI mode: a question in plain words (a mention or a DM), answered by a model using our tools.

The model gets the server's tools as Anthropic tool definitions, without `confirm_token`: it can ask what a
destructive tool would do, never make it happen. Such a call goes to the server without a token, and its
`confirmation_required` becomes the same Confirm / Cancel buttons `/livekit` shows, for a person; the model is told
that a person was asked, and never sees the token (every tool answer it reads has confirm tokens blanked out).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
from mcp.types import Tool

from livekit_mcp.service import failure_summary
from livekit_mcp.slack.blocks import Block
from livekit_mcp.slack.commands import Commands, Person
from livekit_mcp.slack.mcp_client import withheld

log = logging.getLogger(__name__)

SYSTEM = """\
You help a team operate LiveKit from Slack, with tools that read and change its rooms. Answer briefly, in Slack's
mrkdwn. Destructive tools (removing people or agents, deleting rooms) are never done by you: calling one shows the
person Confirm / Cancel buttons with what it would do, and they decide. Say so, and do not call it twice."""
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
                return f"The model could not answer ({type(exc).__name__}); `/livekit help` works without it."
            uses = [block for block in reply.content if block.type == "tool_use"]
            said = "\n".join(block.text for block in reply.content if block.type == "text").strip()
            if not uses:
                return said or "(no answer)"
            messages.append({"role": "assistant", "content": [block.model_dump() for block in reply.content]})
            results = []
            for use in uses:
                arguments = {k: v for k, v in dict(use.input).items() if k != "confirm_token"}
                if use.name in offered:
                    text, failed = await self._run(
                        use.name, arguments, person, channel, destructive, changes, post_buttons
                    )
                else:  # a tool it was not given (a change, in a read-only channel or for a reader): refused here
                    text, failed = f"{use.name} is not available to this person in this channel.", True
                results.append({"type": "tool_result", "tool_use_id": use.id, "content": text, "is_error": failed})
            messages.append({"role": "user", "content": results})
        return "I stopped after too many steps; ask again more precisely, or use `/livekit`."

    async def _run(
        self,
        tool: str,
        arguments: dict[str, Any],
        person: Person,
        channel: str,
        destructive: set[str],
        changes: set[str],
        post_buttons: PostButtons,
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
        return withheld(answer.text), not answer.ok
