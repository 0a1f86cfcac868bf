"""A real `livekit-agents` worker for the tests: `python tests/agent_worker.py AGENT_NAME`.

Registered under AGENT_NAME (explicit dispatch; "" for automatic dispatch), it joins each room it is sent
to, sets the agent state a voice agent would (`lk.agent.state`), and stays until it is removed or its job
ends. No model and no plugin: nothing is downloaded. LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET say
where the server is.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from livekit.agents import AgentServer, JobContext, JobExecutorType


def main(agent_name: str) -> None:
    # Threads, not processes: a job costs milliseconds, and the test machine has two cores.
    server = AgentServer(job_executor_type=JobExecutorType.THREAD, port=0, num_idle_processes=0)

    @server.rtc_session(agent_name=agent_name)
    async def entrypoint(ctx: JobContext) -> None:
        await ctx.connect()
        await ctx.room.local_participant.set_attributes({"lk.agent.state": "listening"})

    # The fixture waits for this line: the server has accepted the worker and can send it jobs.
    server.on("worker_registered", lambda worker_id, _info: print(f"registered worker {worker_id}", flush=True))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(server.run(devmode=True))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
