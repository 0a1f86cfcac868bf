"""What lives as long as the process is taken out of the cyclic garbage collector's reach."""

from __future__ import annotations

import gc

YOUNG_OBJECTS = 10_000
"""Allocations between two young collections (CPython's default is 700): a call that lists a big room makes a
protobuf wrapper per participant, all alive until the call ends, and each young collection walked them again."""

_OURS = False
"""Whether `settle` ran: the process is the server's own (`app.run`), not a test or a host embedding the seam."""


def settle() -> None:
    """Freeze every object alive now (`gc.freeze`): the modules, classes, schemas and tools loaded so far, which
    live as long as the process; and collect the young generation less often.

    Measured on a room of 5,000 (`list_participants(limit=50)`, our server's CPU per call over 150 calls): 16 ms
    as CPython leaves it, 9 ms frozen, 8 ms frozen with YOUNG_OBJECTS, 7.5 ms with the collector off. Unfrozen,
    each full collection walks the whole loaded heap again. Called by `app.run` once the server is built: a
    process that merely uses the package keeps its collector as it is."""
    global _OURS
    _OURS = True
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])


def settle_loaded() -> None:
    """Freeze again once more has been loaded for good (livekit-api, by the first LiveKit call), in the server's
    own process only; the few objects of that request frozen with it are kept (a few kilobytes, once)."""
    if _OURS:
        gc.freeze()
