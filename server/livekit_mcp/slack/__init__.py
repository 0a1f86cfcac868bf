"""`livekit-mcp slack`: a Slack app over livekit-mcp's tools (the optional extra `livekit-mcp[slack]`).

- `settings`: its settings (Slack's tokens, the channel policy, roles, the AI mode).
- `mcp_client`: an MCP client of livekit-mcp (stdio child or HTTP service), calling tools on a person's behalf.
- `commands`: `/livekit` subcommands, who may change what where, confirmations held as buttons.
- `blocks`: the Block Kit messages.
- `ai`: mentions and DMs answered by a model (Anthropic) using the tools; destructive steps become buttons.
- `app`: the Bolt app, in Socket Mode or HTTP mode (`/slack/events`).
"""
