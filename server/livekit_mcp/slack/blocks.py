"""Block Kit messages sized for Slack: rows as section fields (ten to a section), a "more" button for the next
page, and the Confirm / Cancel buttons of a destructive request."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Block = dict[str, Any]

MORE = "livekit_more"
CONFIRM = "livekit_confirm"
CANCEL = "livekit_cancel"
FIELDS_PER_SECTION = 10
"""Slack's limit of fields in one section block."""
MAX_TEXT = 2900
"""A section's text may hold 3000 characters."""


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text[:MAX_TEXT]}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(text)}


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text)]}


def escape(text: str) -> str:
    """Text from LiveKit (names, identities) as Slack shows it literally, never as a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def page(title: str, rows: Sequence[str], offset: int, size: int, more: dict[str, Any] | None) -> list[Block]:
    """Rows `offset`… of a list, as fields, and a "more" button carrying `more` (the command) when rows remain."""
    shown = rows[offset : offset + size]
    blocks = [section(title)]
    for start in range(0, len(shown), FIELDS_PER_SECTION):
        blocks.append(
            {"type": "section", "fields": [mrkdwn(r[:1900]) for r in shown[start : start + FIELDS_PER_SECTION]]}
        )
    end = offset + len(shown)
    if rows:
        blocks.append(context(f"{offset + 1}–{end} of {len(rows)}"))
    if more is not None and end < len(rows):
        value = json.dumps({**more, "o": end}, separators=(",", ":"))
        blocks.append(
            {
                "type": "actions",
                "elements": [{"type": "button", "action_id": MORE, "text": plain("more"), "value": value}],
            }
        )
    return blocks


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:75], "emoji": False}


def confirmation(question: str, asker: str, expires_at: int, pending_id: str) -> list[Block]:
    """What a destructive request would do, who may confirm, until when, and the two buttons."""
    until = f"<!date^{expires_at}^{{time_secs}}|{expires_at}>"
    return [
        section(f":warning: *Confirmation required.* {escape(question)}"),
        context(f"Asked by <@{asker}>. Only they or an approver may confirm; expires at {until}."),
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": CONFIRM,
                    "text": plain("Confirm"),
                    "style": "danger",
                    "value": pending_id,
                },
                {"type": "button", "action_id": CANCEL, "text": plain("Cancel"), "value": pending_id},
            ],
        },
    ]


def outcome(headline: str, detail: str = "") -> list[Block]:
    """A request's end: what happened, in a line, and the tool's own words under it."""
    blocks = [section(headline)]
    if detail:
        blocks.append(context(escape(detail)))
    return blocks
