"""WebRTC participants of a real server, in a process of their own: `python -m bench.crowd`.

The real-time SDK's threads hand every event to the process's event loop and take its GIL: in the bench's own
process they stretched each timed call of the MCP client (whose stdio transport hops between threads), so the
real server's rows measured the bench's contention more than our server. Here they only share the machine.

One JSON object a line on stdin, `{"id", "url", "token", "mic"}`: join with that token (published microphone,
no audio flowing, when `mic`); one line back on stdout, `{"id", "error"}` (`error` null once joined). At the end
of stdin everyone leaves and the process exits. The tokens are the parent's to make; nothing here prints them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from livekit import rtc

ANSWERS = sys.stdout


async def _join(order: dict[str, Any], joined: list[rtc.Room]) -> None:
    room = rtc.Room()
    error = None
    try:
        await asyncio.wait_for(room.connect(order["url"], order["token"], rtc.RoomOptions(auto_subscribe=False)), 30)
        joined.append(room)
        if order.get("mic"):  # published, with no audio flowing: the server lists it as a track all the same
            track = rtc.LocalAudioTrack.create_audio_track("microphone", rtc.AudioSource(48000, 1))
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await asyncio.wait_for(room.local_participant.publish_track(track, options), 30)
    except Exception as exc:  # told to the parent, which raises it
        error = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"id": order["id"], "error": error}), file=ANSWERS, flush=True)


async def main() -> None:
    loop = asyncio.get_running_loop()
    joined: list[rtc.Room] = []
    joining: set[asyncio.Task[None]] = set()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        task = asyncio.create_task(_join(json.loads(line), joined))
        joining.add(task)
        task.add_done_callback(joining.discard)
    await asyncio.gather(*joining)
    await asyncio.gather(*(asyncio.wait_for(r.disconnect(), 10) for r in joined), return_exceptions=True)


if __name__ == "__main__":
    ANSWERS, sys.stdout = sys.stdout, sys.stderr  # stdout carries the answers only, whatever a library prints
    asyncio.run(main())
