"""A real `livekit-server --dev` on loopback, with a real Redis of its own.

`scripts/livekit-server` builds the server; `LIVEKIT_SERVER_BIN` names it (scripts/check sets it). A missing
binary or redis-server raises `Unavailable`: with `LIVEKIT_MCP_TEST_REAL=required` (scripts/check, CI) the tests
then fail, otherwise they are skipped with the reason (tests/conftest.py decides); the bench leaves its
real-server rows out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from livekit import api

from realkit.processes import Unavailable, free_port, stop, tail

ROOT = Path(__file__).resolve().parent.parent
KEY = "real-key"
SECRET = "real-secret-0123456789abcdef0123456789abcdef"  # long enough that PyJWT does not warn
START_SECONDS = 30


def server_binary() -> Path:
    named = os.environ.get("LIVEKIT_SERVER_BIN")
    if named:
        if not os.access(named, os.X_OK):
            raise Unavailable(f"LIVEKIT_SERVER_BIN={named} is not an executable livekit-server")
        return Path(named)
    built = sorted((ROOT / ".cache" / "livekit").glob("livekit-server-*/livekit-server"))
    if not built:
        raise Unavailable("no livekit-server: run scripts/livekit-server (or scripts/check) to build it")
    return built[-1]


def _wait(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting; its log:\n{tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} was not ready within {START_SECONDS} s; its log:\n{tail(log)}")


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:  # noqa: S310 (a loopback URL of ours)
            return bool(response.status == 200)
    except OSError:
        return False


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_real_redis(log: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    """Debian's redis-server on a free loopback port, nothing saved to disk; its port. The process joins `processes`."""
    redis = shutil.which("redis-server")
    if redis is None:
        raise Unavailable("no redis-server (Debian's redis-server package): scripts/check installs it")
    port = free_port()
    with log.open("wb") as out:
        args = [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        processes.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT))
    _wait(f"redis-server on 127.0.0.1:{port}", lambda: _pings(port), processes[-1], log)
    return port


@dataclass
class RealLiveKitServer:
    """A real `livekit-server --dev` on loopback (HTTP, RTC TCP and UDP on free ports) with its own Redis."""

    binary: Path
    logs: Path
    api_key: str = KEY
    api_secret: str = SECRET
    port: int = field(default_factory=free_port)
    version: str = ""
    webhook_urls: list[str] = field(default_factory=list)
    """Where it posts its webhooks (signed with its key), as `webhook.urls` of its config."""
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.logs / "livekit-server.log"

    def start(self) -> None:
        redis_port = start_real_redis(self.logs / "redis.log", self._processes)
        # No external IP discovery (there is no internet) and nothing bound beyond loopback.
        config = self.logs / "livekit.yaml"
        config.write_text(
            f"port: {self.port}\n"
            "bind_addresses: [127.0.0.1]\n"
            f"rtc: {{tcp_port: {free_port()}, udp_port: {free_port(socket.SOCK_DGRAM)}, use_external_ip: false,"
            " node_ip: 127.0.0.1}\n"
            f"redis: {{address: '127.0.0.1:{redis_port}'}}\n"
            f"keys: {{{self.api_key}: {self.api_secret}}}\n"
            "logging: {level: info}\n"
            + (
                f"webhook: {{api_key: {self.api_key}, urls: {json.dumps(self.webhook_urls)}}}\n"
                if self.webhook_urls
                else ""
            )
        )
        self.version = subprocess.run(
            [str(self.binary), "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()[-1]
        self._spawn([str(self.binary), "--dev", "--config", str(config)], self.log)
        _wait(f"{self.binary} on port {self.port}", lambda: _answers(self.url), self._processes[-1], self.log)

    def _spawn(self, args: list[str], log: Path) -> None:
        with log.open("wb") as out:
            self._processes.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT))

    def died(self) -> str | None:
        """Which process of the server died during the run, if one did."""
        for process in self._processes:
            if process.poll() is not None:
                name = Path(str(process.args[0] if isinstance(process.args, list) else process.args)).name
                return f"{name} (livekit-server port {self.port}) died with status {process.returncode}"
        return None

    def check_alive(self) -> None:
        """Fails with the server's last log lines if it died during the run."""
        if death := self.died():
            raise AssertionError(f"{death}; its log:\n{tail(self.log)}")

    def stop(self) -> None:
        for process in reversed(self._processes):
            stop(process)

    def token(
        self,
        room: str,
        identity: str,
        *,
        kind: str = "",
        name: str = "",
        metadata: str = "",
        attributes: dict[str, str] | None = None,
        agent: bool = False,
        can_publish: bool = True,
        hidden: bool = False,
    ) -> str:
        grants = api.VideoGrants(room_join=True, room=room, can_publish=can_publish, agent=agent, hidden=hidden)
        token = api.AccessToken(self.api_key, self.api_secret).with_identity(identity).with_grants(grants)
        if kind:
            token = token.with_kind(kind)  # type: ignore[arg-type]
        if name:
            token = token.with_name(name)
        if metadata:
            token = token.with_metadata(metadata)
        if attributes:
            token = token.with_attributes(attributes)
        return token.to_jwt()


@contextlib.contextmanager
def running_real_livekit(logs: Path, webhook_urls: Sequence[str] = ()) -> Iterator[RealLiveKitServer]:
    """A started real server, stopped on exit. Raises `Unavailable` (no binary, no redis-server) or RuntimeError
    (it did not start)."""
    binary = server_binary()
    for attempt in range(3):
        server = RealLiveKitServer(binary, logs, webhook_urls=list(webhook_urls))
        try:
            server.start()
            break
        except RuntimeError as exc:
            server.stop()
            # A free port found by binding and releasing it can be taken by another process before the server
            # binds it: new ports, up to three times. Anything else fails the run at once.
            if isinstance(exc, Unavailable) or "address already in use" not in str(exc) or attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()
