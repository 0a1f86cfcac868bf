"""How a string someone else chose is shown in a text answer, a log line or a history line.

LiveKit hands back names, identities, metadata and attributes exactly as whoever joined set them: a newline in a
display name would start a fake row of `list_participants` or a fake event of `room_history`, and a bidi control
(U+202E) would make "Eve \\u202etoor" read as "Eve root". Every renderer passes such strings through `shown`;
structured content keeps them exact.
"""

from __future__ import annotations

import unicodedata

# Control characters (Cc: newlines, NEL, ESC), format characters (Cf: bidi overrides and isolates, zero-width
# joiners, the BOM), line and paragraph separators (Zl, Zp) and lone surrogates (Cs): any of them can break a line
# or change how the rest of it reads.
_UNSEEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Quotes and backslashes are left as they are: a name such as O'Brien, or JSON an RPC handler answered, stays
# readable; what matters is that nothing starts a line or turns the text around.
_ESCAPED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def unseen(value: str) -> str:
    """The characters of `value` that `shown` escapes for being invisible or line-breaking, as "U+202E, U+000A"
    (for an error that names them without showing them); "" when there are none."""
    found = dict.fromkeys(f"U+{ord(c):04X}" for c in value if unicodedata.category(c) in _UNSEEN)
    return ", ".join(found)


def shown(value: object) -> str:
    """`value` as one line of visible text: unseen characters backslash-escaped (\\n, \\u202e)."""
    text = str(value)
    if text.isascii() and text.isprintable():
        return text  # the common case, cheap: nothing to escape
    return "".join(_escaped(c) for c in text)


def _escaped(c: str) -> str:
    if c in _ESCAPED:
        return _ESCAPED[c]
    if unicodedata.category(c) not in _UNSEEN:
        return c
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# Query parameters of a pull URL that carry a credential: SRT's passphrase, signed URLs (S3's X-Amz-Signature, CDN
# tokens), passwords and keys of any kind. Matched as a part of the lower-cased name ("x-amz-signature", "api_key").
_SECRET_PARAMETERS = ("pass", "pwd", "secret", "token", "key", "sig", "auth", "credential", "session")
REDACTED = "***"


def redacted_url(url: str) -> str:
    """`url` with the credentials it may carry replaced by ***: the user and password before the host, and the
    values of query parameters named like a secret. Shown wherever a URL someone gave is shown again (lists, the
    audit log, errors); only the answer that made an ingress shows its URL whole."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.rpartition("@")[2] if "@" in url else url
    ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    authority, tail = (rest[: min(ends)], rest[min(ends) :]) if ends else (rest, "")
    if "@" in authority:
        authority = REDACTED + "@" + authority.rpartition("@")[2]
    path, question, query = tail.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        parts = []
        for part in query.split("&"):
            name, equals, _ = part.partition("=")
            secret = equals and any(word in name.lower() for word in _SECRET_PARAMETERS)
            parts.append(f"{name}={REDACTED}" if secret else part)
        query = "&".join(parts) + hash_ + fragment
    return f"{scheme}{sep}{authority}{path}{question}{query}"
