"""Ids shaped like LiveKit's: a leaf every part of the sandbox may import (it imports nothing of the sandbox)."""

from __future__ import annotations

import random
import string

_ALPHABET = string.ascii_letters + string.digits


def guid(prefix: str) -> str:
    """An id shaped like LiveKit's (`RM_`, `PA_`, `TR_`, `AD_`, `AJ_` + 12 base62 characters)."""
    return prefix + "".join(random.choices(_ALPHABET, k=12))
