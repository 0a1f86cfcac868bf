"""Who may use the HTTP server, and for what.

Static bearer tokens, each with a principal (a name for logs and the audit log) and a role: `read` (the read
tools only) or `write` (everything). Roles travel as OAuth scopes on the SDK's `AccessToken`, so a real OAuth
resource-server setup (a `TokenVerifier` that checks an authorization server's tokens carrying these scopes)
can replace the static tokens without touching the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcp.server.auth.provider import AccessToken

from livekit_mcp.errors import AuthConfigError

READ_SCOPE = "livekit:read"
WRITE_SCOPE = "livekit:write"
PROJECT_SCOPE = "livekit:project:"
"""Followed by a project's name: a token with such scopes may use those projects only (none: every project)."""
SCOPES = {"read": [READ_SCOPE], "write": [READ_SCOPE, WRITE_SCOPE]}
Role = Literal["read", "write"]


@dataclass(frozen=True)
class _Entry:
    principal: str
    role: Role
    digest: bytes  # sha256 of the token: the tokens themselves are not kept
    projects: tuple[str, ...] = ()
    """The projects it may use; () for every project."""


def _entry(principal: str, role: str, *, token: object = None, digest_hex: object = None) -> _Entry:
    if not principal:
        raise AuthConfigError("a token has no principal name")
    if role not in SCOPES:
        raise AuthConfigError(f"token of '{principal}': role must be read or write")
    checked: Role = "read" if role == "read" else "write"
    if token is not None:
        if not isinstance(token, str) or len(token) < 16:
            raise AuthConfigError(f"token of '{principal}' is shorter than 16 characters")
        return _Entry(principal, checked, hashlib.sha256(token.encode()).digest())
    try:
        digest = bytes.fromhex(digest_hex if isinstance(digest_hex, str) else "")
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise AuthConfigError(f"token of '{principal}': token_sha256 must be 64 hex digits")
    return _Entry(principal, checked, digest)


def parse_tokens(spec: str) -> list[_Entry]:
    """`principal:role:token` entries, comma-separated (LIVEKIT_MCP_AUTH_TOKENS).

    A malformed entry is named by its position only: what stands where a principal or role should be may well be
    the token itself (an entry without its principal, or without its role)."""
    entries = []
    for number, item in enumerate(filter(None, (part.strip() for part in spec.split(","))), start=1):
        principal, _, rest = item.partition(":")
        role, _, token = rest.partition(":")
        if not token:
            raise AuthConfigError(f"entry {number} of LIVEKIT_MCP_AUTH_TOKENS is not principal:role:token")
        if role not in SCOPES:
            raise AuthConfigError(f"entry {number} of LIVEKIT_MCP_AUTH_TOKENS: role must be read or write")
        entries.append(_entry(principal, role, token=token))
    if not entries:
        raise AuthConfigError("LIVEKIT_MCP_AUTH_TOKENS is set but holds no principal:role:token entry")
    return entries


def read_token_file(path: Path) -> list[_Entry]:
    """A TOML file of `[[tokens]]` tables with principal, role and token (or token_sha256, to keep none in clear)."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AuthConfigError(f"cannot read {path}: {exc}") from exc
    tables = data.get("tokens")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise AuthConfigError(f"{path}: expected [[tokens]] tables")
    if not tables:
        raise AuthConfigError(f"{path}: no [[tokens]] table: it would leave the server without authentication")
    return [
        _limited(
            _entry(
                str(t.get("principal", "")),
                str(t.get("role", "")),
                token=t.get("token"),
                digest_hex=t.get("token_sha256"),
            ),
            t.get("projects"),
        )
        for t in tables
    ]


def _limited(entry: _Entry, projects: object) -> _Entry:
    """The entry limited to the `projects` of its table, when it has that key."""
    if projects is None:
        return entry
    if not isinstance(projects, list) or not projects or not all(isinstance(p, str) and p for p in projects):
        raise AuthConfigError(f"token of '{entry.principal}': projects is a non-empty list of project names")
    return _Entry(entry.principal, entry.role, entry.digest, tuple(projects))


def projects_of(scopes: Iterable[str]) -> frozenset[str] | None:
    """The projects a token's scopes limit it to; None when they do not."""
    named = frozenset(s.removeprefix(PROJECT_SCOPE) for s in scopes if s.startswith(PROJECT_SCOPE))
    return named or None


class StaticTokens:
    """The SDK's `TokenVerifier` over configured tokens; comparisons take the same time whatever matches."""

    def __init__(self, entries: Iterable[_Entry]) -> None:
        self._entries = list(entries)
        principals = [e.principal for e in self._entries]
        duplicates = sorted({p for p in principals if principals.count(p) > 1})
        if duplicates:
            raise AuthConfigError(f"principal {', '.join(duplicates)} has more than one token")
        # One token for two principals would silently get whichever matched last: its role and its name.
        owners: dict[bytes, list[str]] = {}
        for entry in self._entries:
            owners.setdefault(entry.digest, []).append(entry.principal)
        shared = [names for names in owners.values() if len(names) > 1]
        if shared:
            raise AuthConfigError(f"principals {' and '.join(shared[0])} are given the same token; give each its own")

    def __bool__(self) -> bool:
        return bool(self._entries)

    def projects_named(self) -> dict[str, tuple[str, ...]]:
        """Principal → the projects its token is limited to, for those that are (checked at start)."""
        return {e.principal: e.projects for e in self._entries if e.projects}

    async def verify_token(self, token: str) -> AccessToken | None:
        digest = hashlib.sha256(token.encode()).digest()
        found: _Entry | None = None
        for entry in self._entries:  # no early exit: the time taken does not say which entry matched
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        if found is None:
            return None
        scopes = SCOPES[found.role] + [PROJECT_SCOPE + p for p in found.projects]
        return AccessToken(token=token, client_id=found.principal, scopes=scopes)
