"""Run an app on a real port for HTTP tests; raw-socket helpers for hostile input."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from cordio import App
from cordio.config import EnvSource
from cordio.lifecycle import Runtime


def app_with(name: str = "svc", **settings: str) -> App:
    """An app whose settings come only from ``settings`` (``HTTP__PORT="0"`` style)."""
    environ = {f"{name.upper()}__{k}": v for k, v in {"HTTP__PORT": "0", **settings}.items()}
    return App(name, config=[EnvSource(name, environ=environ)])


@contextlib.asynccontextmanager
async def serving(app: App) -> AsyncIterator[tuple[Runtime, int]]:
    """Start ``app`` with its real HTTP server; yield the runtime and the bound port."""
    async with app.running() as runtime:
        yield runtime, runtime.services[0].port


async def raw_request(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes (or timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        return b"".join(chunks)
    finally:
        writer.close()


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
