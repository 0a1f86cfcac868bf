"""The LiveKit sandbox of a bench run, in its own process: `python bench/sandbox.py PORT`.

The key is `bench`; the secret comes from BENCH_LIVEKIT_SECRET (not argv, which other users can read). It is
random and as long as a real one: a short secret makes PyJWT warn on every token it signs.
"""

import asyncio
import os
import sys

from livekit_mcp.sandbox import Sandbox


async def serve(port: int) -> None:
    sandbox = Sandbox(keys={"bench": os.environ["BENCH_LIVEKIT_SECRET"]}, seed=False)
    await sandbox.start(port=port)
    await asyncio.Event().wait()  # until the bench terminates this process


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
