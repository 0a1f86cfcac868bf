"""Processes of the tests and the benchmarks: stopping one, free loopback ports, the tail of a log, bounded waits,
and what a server process holds, read from /proc (memory, open files, connections to LiveKit; Linux only)."""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio


class Unavailable(RuntimeError):
    """A real counterpart cannot run here (no binary, no redis-server): the tests skip or fail, the bench leaves
    its rows out."""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def rss_kib(pid: int) -> int:
    """Resident memory of the process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def _links(pid: int) -> list[str]:
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed while we looked
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return links


def open_fds(pid: int) -> int:
    return len(_links(pid))


def connections(pid: int, port: int) -> int:
    """Established TCP connections of the process to `port` (e.g. the sandbox's)."""
    inodes = {link[len("socket:[") : -1] for link in _links(pid) if link.startswith("socket:[")}
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            remote_port, state, inode = int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if state == "01" and remote_port == port and inode in inodes:
                count += 1
    return count


async def until(condition: str, check: Callable[[], bool | Awaitable[bool]], seconds: float = 10) -> None:
    """Bounded wait until `check()` is true; fails naming the `condition` waited for."""
    with anyio.move_on_after(seconds):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await anyio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {condition}")


def stop(*processes: subprocess.Popen[bytes]) -> None:
    """Stops processes politely, then for good: all are asked at once, so their shutdowns (an agent worker's
    drain, a server's grace) overlap instead of adding up."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + 10
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
