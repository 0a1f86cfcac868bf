"""Real agent workers: `livekit-agents` worker processes running the demo's agent (`livekit_mcp.demo_agent`),
registered with a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from realkit.livekit_server import START_SECONDS, RealLiveKitServer
from realkit.processes import stop, tail


@dataclass
class RealAgentWorker:
    """A `livekit-agents` worker process (livekit_mcp.demo_agent) registered with the server."""

    agent_name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop(self.process)


def start_real_agent_worker(server: RealLiveKitServer, agent_name: str, logs: Path, *flags: str) -> RealAgentWorker:
    """Starts a worker serving `agent_name` ("" = automatic dispatch to every new room), the demo agent run with
    `flags`; waits until registered (with `--full`: until it has told the server it is at capacity)."""
    log = logs / f"agent-worker-{agent_name or 'auto'}.log"
    env = os.environ | {
        "LIVEKIT_URL": server.ws_url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }
    # The demo's agent is the agent users see in the tour; the tests run the same one.
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "livekit_mcp.demo_agent", agent_name, *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    worker = RealAgentWorker(agent_name, process, log)
    deadline = time.monotonic() + START_SECONDS
    ready = [b"registered worker", *([b"marking as unavailable"] if "--full" in flags else [])]
    while not all(line in log.read_bytes() for line in ready):
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"the agent worker for {agent_name!r} did not register; its log:\n{tail(log)}")
        time.sleep(0.05)
    return worker
