"""`livekit-api` and aiohttp, imported here only, and executed by the first LiveKit call, not at start-up.

They take ~170 ms to import and tools/list needs neither (the cold start of bench/README.md). The modules of this
package use them as `from ._imports import aiohttp, api`, and touch them only inside functions.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING


def _lazy(name: str) -> ModuleType:
    """The module, executed only when one of its attributes is first used."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import aiohttp as aiohttp
    from livekit import api as api
else:
    aiohttp, api = _lazy("aiohttp"), _lazy("livekit.api")

__all__ = ["aiohttp", "api"]
