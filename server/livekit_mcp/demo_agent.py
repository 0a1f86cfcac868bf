"""The demo's voice agent: `python -m livekit_mcp.demo_agent AGENT_NAME [--ignore-shutdown] [--full]` (a real
`livekit-agents` worker).

`livekit-mcp demo --dev` runs it as a subprocess (livekit-agents owns its event loop and signal handlers, so it
does not share the demo's). Registered under AGENT_NAME for explicit dispatch, it joins each room it is sent
to and sets the state a voice agent would (`lk.agent.state`); no model, no plugin, nothing downloaded.
It leaves by itself when `remove_agent(grace_seconds=N)` asks it to (the `livekit-mcp.shutdown` RPC method or
data topic), unless started with `--ignore-shutdown`, as an agent written without that convention would be.
With `--full` it registers but reports itself at capacity, as a busy worker does: LiveKit sends it no job.
LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET say where the server is. It prints one line on stdout,
`registered worker ID`, once the server can send it jobs; its logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys

from livekit import rtc
from livekit.agents import AgentServer, JobContext, JobExecutorType

from livekit_mcp.models import SHUTDOWN_METHOD, SHUTDOWN_TOPIC


def main(agent_name: str, *, ignore_shutdown: bool = False, full: bool = False) -> None:
    # Threads, not processes: a job costs milliseconds, and a laptop running the demo needs no process pool.
    # The load is reported as zero: livekit-server offers a job only to a worker whose load is below 1 and never
    # retries a dispatch it could not place ("no servers available"), so a busy machine would lose the agent.
    # `full` reports the load at the threshold instead: the worker marks itself unavailable (WS_FULL).
    server = AgentServer(
        job_executor_type=JobExecutorType.THREAD,
        port=0,
        num_idle_processes=0,
        load_fnc=lambda: 1.0 if full else 0.0,
        load_threshold=0.5 if full else math.inf,  # math.inf: what livekit-agents takes in dev mode
    )

    @server.rtc_session(agent_name=agent_name)
    async def entrypoint(ctx: JobContext) -> None:
        await ctx.connect()
        if not ignore_shutdown:
            # remove_agent(grace_seconds=N) asks first: end the session ourselves (README: stopping gracefully).
            async def leave(data: rtc.RpcInvocationData) -> str:
                # A moment later, so that this answer is sent before the room is left.
                asyncio.get_running_loop().call_later(0.5, ctx.shutdown, "asked to leave")
                return "leaving"

            ctx.room.local_participant.register_rpc_method(SHUTDOWN_METHOD, leave)
            ctx.room.on(
                "data_received",
                lambda packet: ctx.shutdown(reason="asked to leave") if packet.topic == SHUTDOWN_TOPIC else None,
            )
        await ctx.room.local_participant.set_attributes({"lk.agent.state": "listening"})

    server.on("worker_registered", lambda worker_id, _info: print(f"registered worker {worker_id}", flush=True))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(server.run(devmode=True))


if __name__ == "__main__":
    main(sys.argv[1], ignore_shutdown="--ignore-shutdown" in sys.argv[2:], full="--full" in sys.argv[2:])
