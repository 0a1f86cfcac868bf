"""HTTP to an ASGI app in this process, streamed: no socket, no port.

httpx2's own `ASGITransport` hands back a response only once the app has sent all of it, so a streamable HTTP
response that waits for the client (an elicitation on the POST's SSE stream, the GET stream that stays open) would
never arrive. Here each request runs as a task of its own and its body reaches the client chunk by chunk, as over
a socket; closing the response tells the app the client went away (`http.disconnect`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.types import ASGIApp

Message = MutableMapping[str, Any]


class _Body(httpx2.AsyncByteStream):
    def __init__(self, chunks: MemoryObjectReceiveStream[bytes], gone: anyio.Event) -> None:
        self._chunks = chunks
        self._gone = gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async with self._chunks:
            async for chunk in self._chunks:
                yield chunk

    async def aclose(self) -> None:
        self._gone.set()
        self._chunks.close()


class StreamingASGITransport(httpx2.AsyncBaseTransport):
    """Requests to `app`, each run in `tasks` until the app is done with it."""

    def __init__(self, app: ASGIApp, tasks: TaskGroup) -> None:
        self._app = app
        self._tasks = tasks

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        body = b"".join([chunk async for chunk in request.stream])
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
        }
        send_chunk, chunks = anyio.create_memory_object_stream[bytes](math.inf)
        started = anyio.Event()
        gone = anyio.Event()
        head: dict[str, Any] = {}
        sent_body = False

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                head.update(status=message["status"], headers=message.get("headers", []))
                started.set()
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    send_chunk.send_nowait(message["body"])
                if not message.get("more_body", False):
                    send_chunk.close()

        async def run() -> None:
            try:
                await self._app(scope, receive, send)
            finally:
                send_chunk.close()
                started.set()

        self._tasks.start_soon(run)
        await started.wait()
        if "status" not in head:
            raise httpx2.RemoteProtocolError("the app sent no response", request=request)
        return httpx2.Response(head["status"], headers=head["headers"], stream=_Body(chunks, gone))


@asynccontextmanager
async def asgi_client(app: ASGIApp, headers: dict[str, str] | None = None) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client whose requests go to `app` in this process; what the app still runs is cancelled at the end."""
    async with anyio.create_task_group() as tasks:
        transport = StreamingASGITransport(app, tasks)
        async with httpx2.AsyncClient(transport=transport, headers=headers) as http:
            yield http
        tasks.cancel_scope.cancel()
