"""`livekit-mcp check`: does each configured LiveKit project answer, and does it accept its key and secret?"""

from __future__ import annotations

import anyio

from livekit_mcp.config import Settings
from livekit_mcp.errors import AuthenticationFailed, LiveKitError, PermissionDenied, Timeout, Unreachable
from livekit_mcp.livekit_backend import LiveKit
from livekit_mcp.projects import ProjectSpec, project_specs


async def _check(spec: ProjectSpec, seconds: float) -> tuple[list[str], bool]:
    key = spec.api_key
    async with LiveKit(spec.url, key, spec.api_secret, timeout=seconds, concurrency=1) as lk:
        try:
            rooms = await lk.list_rooms()
        except (Unreachable, Timeout) as exc:
            return [f"URL {lk.url}: no answer ({exc})", f"API key '{key}': not checked"], False
        except (AuthenticationFailed, PermissionDenied) as exc:
            return [f"URL {lk.url}: answers", f"API key '{key}' and secret: rejected ({exc})"], False
        except LiveKitError as exc:
            return [f"URL {lk.url}: answers, with an error ({exc})", f"API key '{key}': not checked"], False
    return [f"URL {lk.url}: answers", f"API key '{key}' and secret: accepted ({len(rooms)} rooms visible)"], True


async def _check_all(specs: list[ProjectSpec], seconds: float) -> list[tuple[list[str], bool]]:
    """Every project at once, each within its own timeout: one that does not answer delays none of the others."""
    results: dict[int, tuple[list[str], bool]] = {}

    async def one(i: int) -> None:
        results[i] = await _check(specs[i], seconds)

    async with anyio.create_task_group() as tg:
        for i in range(len(specs)):
            tg.start_soon(one, i)
    return [results[i] for i in range(len(specs))]


def run_check(settings: Settings) -> int:
    """Print the checks: two lines for a single unnamed project, one line per project otherwise (with --project,
    that project's line alone). Exit status 0 when every project checked is fine, 1 otherwise."""
    specs, default = project_specs(settings)
    if settings.project is not None:  # `check --project NAME`: that project alone, as `lk --project NAME` acts
        specs = [spec for spec in specs if spec.name == settings.project]
    results = anyio.run(_check_all, specs, settings.timeout)
    for spec, (lines, _) in zip(specs, results, strict=True):
        if len(specs) == 1 and not spec.name:
            print("\n".join(lines))
        else:
            mark = " (default)" if spec.name == default else ""
            print(f"{spec.name or '(LIVEKIT_URL)'}{mark}: " + "; ".join(lines))
    return 0 if all(ok for _, ok in results) else 1
