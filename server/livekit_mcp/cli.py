"""The command line: `livekit-mcp [serve] | sandbox | demo | check | webhooks | slack`.

Logs go to stderr: in stdio mode stdout carries nothing but the protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from livekit_mcp import __version__
from livekit_mcp.config import Settings
from livekit_mcp.errors import ConfigurationError, LiveKitMCPError
from livekit_mcp.projects import project_specs

WEBHOOKS_PORT = 8001
"""`livekit-mcp webhooks` listens here by default: beside `serve --transport http` on 8000."""
COMMANDS = ("serve", "sandbox", "demo", "check", "webhooks", "slack")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livekit-mcp",
        description="An MCP server that lets AI assistants operate LiveKit rooms.",
        epilog="Commands: serve (default), sandbox, demo, check, webhooks, slack. "
        "`livekit-mcp COMMAND --help` for each.",
    )
    parser.add_argument("--version", action="version", version=f"livekit-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve MCP (the default)")
    serve.add_argument("--transport", choices=["stdio", "http", "sse"], help="default stdio")
    serve.add_argument("--host", help="HTTP/SSE bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP/SSE port (default 8000)")
    serve.add_argument("--allowed-hosts", help="extra Host values accepted over HTTP, comma-separated")
    serve.add_argument("--allowed-origins", help="extra Origin values accepted over HTTP, comma-separated")
    serve.add_argument(
        "--toolsets",
        help="toolsets to offer, comma-separated: rooms,participants,agents,data,rpc (default); "
        "tokens, sip, egress, ingress if named",
    )
    serve.add_argument("--read-only", action="store_const", const=True, help="offer only the tools that change nothing")
    serve.add_argument(
        "--stateless", action="store_const", const=True, help="HTTP without sessions, for replicas behind a balancer"
    )
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_const",
        const=True,
        help="serve HTTP on a non-loopback address without tokens (something in front must check callers)",
    )
    serve.add_argument("--config", type=Path, help="TOML file of settings (policy, confirmation, audit log, ...)")
    serve.add_argument("--audit-log", type=Path, help="file that gets one JSON line per attempted change")
    serve.add_argument(
        "--output-schemas", action="store_const", const=True, help="publish the tools' output schemas in tools/list"
    )
    _add_livekit_flags(serve, sandbox=True)

    sandbox = commands.add_parser("sandbox", help="run the LiveKit sandbox (an emulator of LiveKit's server API)")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=7880)
    sandbox.add_argument("--empty", action="store_true", help="start without the demo rooms")
    sandbox.add_argument(
        "--webhook-url",
        action="append",
        default=[],
        metavar="URL",
        help="send LiveKit's webhooks (signed with the dev key) to URL, e.g. http://127.0.0.1:8001/webhooks/livekit; "
        "repeatable",
    )
    sandbox.add_argument(
        "--livekit-version",
        default="1.13.5",
        choices=("1.13.5", "1.13.11"),
        help="the livekit-server release the sandbox answers as (default 1.13.5)",
    )

    demo = commands.add_parser("demo", help="a guided tour: the server on the sandbox, driven by a real MCP client")
    where = demo.add_mutually_exclusive_group()
    where.add_argument(
        "--dev",
        action="store_const",
        const="dev",
        dest="credentials",
        help="tour a local `livekit-server --dev` (http://localhost:7880, devkey/secret) instead of the sandbox; "
        "needs livekit-mcp[demo]",
    )
    where.add_argument(
        "--env",
        action="store_const",
        const="env",
        dest="credentials",
        help="tour the LiveKit of LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET (only rooms it creates are changed)",
    )

    check = commands.add_parser("check", help="check that LiveKit answers and accepts the key and secret")
    _add_livekit_flags(check, sandbox=False)

    webhooks = commands.add_parser(
        "webhooks", help="receive LiveKit's webhooks into the history store (for assistants that use stdio)"
    )
    webhooks.add_argument("--host", help="bind address (default 127.0.0.1)")
    webhooks.add_argument("--port", type=int, help=f"port (default {WEBHOOKS_PORT})")
    _add_livekit_flags(webhooks, sandbox=False)

    slack = commands.add_parser(
        "slack", help="the Slack app: /livekit, confirmation buttons, AI answers (needs livekit-mcp[slack])"
    )
    slack.add_argument("--mcp-url", help="use a running livekit-mcp HTTP service (…/mcp) instead of starting one")
    slack.add_argument("--host", help="HTTP mode: bind address of /slack/events (default 127.0.0.1)")
    slack.add_argument("--port", type=int, help="HTTP mode: port of /slack/events (default 3000)")
    slack.add_argument("--config", type=Path, help="TOML file of the server's settings (policy, audit log, ...)")
    slack.add_argument("--audit-log", type=Path, help="the server's audit log (one JSON line per attempted change)")
    slack.add_argument("--toolsets", help="the server's toolsets, comma-separated")
    slack.add_argument("--read-only", action="store_const", const=True, help="the server offers only read tools")
    _add_livekit_flags(slack, sandbox=True)
    return parser


def _add_livekit_flags(parser: argparse.ArgumentParser, *, sandbox: bool) -> None:
    source = parser.add_mutually_exclusive_group()
    if sandbox:
        source.add_argument(
            "--sandbox",
            action="store_const",
            const="sandbox",
            dest="credentials",
            help="start a built-in LiveKit sandbox with demo rooms and use it (no credentials needed)",
        )
    source.add_argument(
        "--dev", action="store_const", const="dev", dest="credentials", help="use `livekit-server --dev` on :7880"
    )
    parser.add_argument("--project", help="the default project, by its name in lk's file (as `lk --project`)")
    parser.add_argument("--timeout", type=float, help="seconds a LiveKit call may take (default 10)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level")
    parser.add_argument("--log-format", choices=["text", "json"], help="stderr log lines as text (default) or JSON")


def _fail(message: str) -> NoReturn:
    print(f"livekit-mcp: {message}", file=sys.stderr)
    raise SystemExit(2)


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the flags that were given on top."""
    flags = (
        "transport",
        "host",
        "port",
        "credentials",
        "timeout",
        "log_level",
        "allowed_hosts",
        "allowed_origins",
        "toolsets",
        "read_only",
        "output_schemas",
        "audit_log",
        "stateless",
        "allow_unauthenticated",
        "log_format",
        "project",
    )
    overrides: dict[str, Any] = {k: getattr(args, k) for k in flags if getattr(args, k, None) is not None}
    try:
        settings = Settings.load(getattr(args, "config", None), **overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid setting: {problems}") from None
    # webhooks: key and secret only; slack with --mcp-url: the service it uses has its own
    remote = getattr(args, "command", None) == "webhooks" or getattr(args, "mcp_url", None) is not None
    if settings.credentials != "sandbox" and not remote:
        project_specs(settings)  # at start, in one line: the projects' files and credentials
    elif settings.credentials == "sandbox":
        from livekit_mcp.app import sandbox_default

        sandbox_default(settings)  # --project names one of its projects (the slack app's server would not start)
    return settings


def _secrets(settings: Settings) -> list[str]:
    """Every secret for the logs to blank out: the settings' and each project's API secret."""
    try:
        specs = project_specs(settings)[0] if settings.credentials != "sandbox" else []
    except ConfigurationError:
        specs = []
    return settings.secrets() + [s.api_secret.get_secret_value() for s in specs]


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")
    args = _parser().parse_args(argv)
    level = getattr(args, "log_level", None) or "WARNING"
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        _run(args)
    except LiveKitMCPError as exc:  # every error of ours says what is wrong in one line (errors.py)
        _fail(str(exc))


def _run(args: argparse.Namespace) -> None:
    if args.command == "sandbox":
        from livekit_mcp.sandbox import serve_forever

        try:
            serve_forever(
                args.host,
                args.port,
                seed=not args.empty,
                webhook_urls=args.webhook_url,
                livekit_version=args.livekit_version,
            )
        except OSError as exc:  # binding: the port is taken (7880 is livekit-server --dev's too), or not ours
            reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's strerror repeats the address
            _fail(f"the sandbox cannot listen on {args.host} port {args.port}: {reason}; --port picks another")
    elif args.command == "demo":
        from livekit_mcp.demo import run_demo

        run_demo(args.credentials or "sandbox")
    elif args.command == "slack":
        _run_slack(args)
    elif args.command == "check":
        from livekit_mcp.check import run_check

        raise SystemExit(run_check(_settings(args)))
    else:
        from livekit_mcp.app import run, run_webhooks
        from livekit_mcp.service import configure_logging

        if args.command == "webhooks" and args.port is None:
            args.port = WEBHOOKS_PORT
        settings = _settings(args)
        configure_logging(settings.log_level, settings.log_format, _secrets(settings))
        with contextlib.suppress(KeyboardInterrupt):
            (run_webhooks if args.command == "webhooks" else run)(settings)


def _run_slack(args: argparse.Namespace) -> None:
    try:
        import anyio

        from livekit_mcp.slack.app import serve
        from livekit_mcp.slack.settings import SlackSettings
    except ImportError as exc:
        _fail(f"the Slack app needs its extra: pip install 'livekit-mcp[slack]' ({exc.name} is missing)")
    from livekit_mcp.service import configure_logging

    flags = {k: getattr(args, k) for k in ("mcp_url", "host", "port") if getattr(args, k) is not None}
    args.host = args.port = None  # the Slack app's, not the server's
    settings = _settings(args)
    try:
        slack = SlackSettings(**flags)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid setting: {problems}") from None
    slack.check()
    configure_logging(settings.log_level, settings.log_format, [*settings.secrets(), *slack.secrets()])
    server_args: list[str] = []  # handed on to the server started over stdio
    if args.credentials in ("sandbox", "dev"):
        server_args.append(f"--{args.credentials}")
    for name in ("config", "audit_log", "toolsets", "timeout", "log_level", "log_format", "project"):
        if getattr(args, name, None) is not None:
            server_args += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.read_only:
        server_args.append("--read-only")
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, settings, slack, server_args)
