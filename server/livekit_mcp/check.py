"""`livekit-mcp check`: does the configured LiveKit answer, and does it accept our key and secret?"""

from __future__ import annotations

import anyio

from livekit_mcp.config import Settings
from livekit_mcp.errors import AuthenticationFailed, LiveKitError, PermissionDenied, Timeout, Unreachable
from livekit_mcp.livekit_backend import LiveKit


async def _check(settings: Settings) -> tuple[list[str], bool]:
    url, key, secret = settings.livekit_credentials()
    async with LiveKit(url, key, secret, timeout=settings.timeout, concurrency=1) as lk:
        try:
            rooms = await lk.list_rooms()
        except (Unreachable, Timeout) as exc:
            return [f"URL {lk.url}: no answer ({exc})", f"API key '{key}': not checked"], False
        except (AuthenticationFailed, PermissionDenied) as exc:
            return [f"URL {lk.url}: answers", f"API key '{key}' and secret: rejected ({exc})"], False
        except LiveKitError as exc:
            return [f"URL {lk.url}: answers, with an error ({exc})", f"API key '{key}': not checked"], False
    return [f"URL {lk.url}: answers", f"API key '{key}' and secret: accepted ({len(rooms)} rooms visible)"], True


def run_check(settings: Settings) -> int:
    """Print one line per check; exit status 0 when everything is fine, 1 otherwise."""
    lines, ok = anyio.run(_check, settings)
    for line in lines:
        print(line)
    return 0 if ok else 1
