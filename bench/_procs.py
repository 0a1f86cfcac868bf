"""The processes of a run: the sandbox, our server and the bare one, started as a host starts them."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mcp import StdioServerParameters
from mcp.client.stdio import get_default_environment

from realkit.processes import stop

BIN = Path(sys.executable).parent
LIVEKIT_MCP = [str(BIN / "livekit-mcp")]
BARE = [sys.executable, str(Path(__file__).with_name("bare.py"))]
SANDBOX = [sys.executable, str(Path(__file__).with_name("sandbox.py"))]
KEY = "bench"
SECRET = secrets.token_hex(32)  # fresh for every run; handed over in environment variables only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{process.args!r} did not listen on {port} within {seconds} s")


@contextmanager
def listening(command: Sequence[str], port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, once it accepts connections on `port`; stopped on exit."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield process
    finally:
        stop(process)


@contextmanager
def sandbox() -> Iterator[tuple[str, int]]:
    """The sandbox without demo rooms, in its own process: it must not share a GIL with the client whose
    calls are timed (the machines have few cores; see README.md). Yields its URL and process id."""
    port = free_port()
    env = get_default_environment() | {"BENCH_LIVEKIT_SECRET": SECRET}
    with listening([*SANDBOX, str(port)], port, env) as process:
        yield f"http://127.0.0.1:{port}", process.pid


STORES = tempfile.TemporaryDirectory(prefix="livekit-mcp-bench-")
"""Where the measured servers keep room history: a SQLite store as a user's default is, but the bench's own, never
the user's (~/.local/state/livekit-mcp), which the bench's rooms would otherwise join."""


def server_env(livekit_url: str, concurrency: int) -> dict[str, str]:
    """What a host gives a stdio server: almost nothing, plus the LiveKit variables (and the bench's own store)."""
    return get_default_environment() | {
        "LIVEKIT_URL": livekit_url,
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
        "LIVEKIT_MCP_CONCURRENCY": str(concurrency),
        "LIVEKIT_MCP_STORE": str(Path(STORES.name) / "store.sqlite3"),
    }


def stdio(command: Sequence[str], env: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(command=command[0], args=list(command[1:]), env=env)


def http_command(command: Sequence[str], port: int) -> list[str]:
    if command == LIVEKIT_MCP:
        return [*command, "serve", "--transport", "http", "--port", str(port)]
    return [*command, "--http", str(port)]


def children() -> set[int]:
    """Process ids of this process's children (the stdio servers the MCP client spawned)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        pids.update(int(pid) for pid in (task / "children").read_text().split())
    return pids


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from /proc (Linux; 10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
