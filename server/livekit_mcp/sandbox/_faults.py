"""Fault injection for the Twirp methods (sandbox only): latency, an error, a dropped connection, garbage."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import SandboxError
from ._twirp import STATUS

ANY = "*"


@dataclass
class Fault:
    latency_ms: int = 0
    error_code: str | None = None
    error_msg: str = ""
    drop: bool = False
    malformed: bool = False
    times: int | None = None  # None: every call


class Faults:
    """Faults keyed by "Service/Method" or "*"; an exact method wins over "*"."""

    def __init__(self, methods: frozenset[str]) -> None:
        self._methods = methods
        self._faults: dict[str, Fault] = {}

    def add(
        self,
        method: str,
        *,
        latency_ms: int = 0,
        error: tuple[str, str] | None = None,
        drop: bool = False,
        malformed: bool = False,
        times: int | None = None,
    ) -> Fault:
        if method != ANY and method not in self._methods:
            raise SandboxError(
                400, f"unknown method {method!r}: use 'Service/Method' (e.g. RoomService/ListRooms) or '*'"
            )
        if error is not None and error[0] not in STATUS:
            raise SandboxError(400, f"unknown twirp code {error[0]!r}")
        if latency_ms < 0 or (times is not None and times < 1):
            raise SandboxError(400, "latency_ms must be >= 0 and times >= 1")
        fault = Fault(latency_ms, error[0] if error else None, error[1] if error else "", drop, malformed, times)
        self._faults[method] = fault
        return fault

    def active(self) -> dict[str, Fault]:
        return dict(self._faults)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str) -> Fault | None:
        """The fault for this call, counting it against `times`."""
        key = method if method in self._faults else ANY
        fault = self._faults.get(key)
        if fault is not None and fault.times is not None:
            fault.times -= 1
            if fault.times == 0:
                del self._faults[key]
        return fault
