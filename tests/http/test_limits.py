"""Hostile input against a real server: oversized bodies and headers, slow clients."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import httpx
import pytest

from cordio.http import Header
from tests.http.server_helpers import app_with, raw_request, serving, status_of

MB = 1 << 20


def upload_app(**settings: str) -> tuple[object, list[int]]:
    app = app_with(**settings)
    seen: list[int] = []

    @app.http.post("/upload")
    async def upload(payload: dict[str, object]) -> int:
        seen.append(len(payload))
        return len(payload)

    @app.http.get("/ok")
    async def ok() -> str:
        return "ok"

    return app, seen


async def assert_still_serving(port: int) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/ok")
    assert response.json() == "ok"


async def test_content_length_over_the_limit_is_refused_before_reading() -> None:
    app, seen = upload_app(HTTP__MAX_BODY="1024")
    async with serving(app) as (_, port):
        async with httpx.AsyncClient() as client:
            small = await client.post(f"http://127.0.0.1:{port}/upload", json={"a": 1})
            big = await client.post(
                f"http://127.0.0.1:{port}/upload", content=b"{" + b" " * 2000 + b"}"
            )
        assert small.status_code == 200
        assert big.status_code == 413
        assert big.headers["content-type"] == "application/problem+json"
        assert "1024" in big.json()["detail"]
        assert seen == [1]
        await assert_still_serving(port)


async def test_100_mb_with_content_length_gets_413_at_once_without_the_body() -> None:
    app, seen = upload_app()
    async with serving(app) as (_, port):
        began = time.monotonic()
        head = (
            f"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {100 * MB}\r\n\r\n"
        ).encode()
        response = await raw_request(port, head, timeout=5)
        assert time.monotonic() - began < 1.0
        assert status_of(response) == 413
        assert seen == []
        await assert_still_serving(port)


async def test_100_mb_chunked_without_content_length_is_cut_off_within_a_second() -> None:
    app, seen = upload_app()
    async with serving(app) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
        sent = 0
        began = time.monotonic()
        response = b""
        answered_at = 0.0

        async def read_answer() -> bytes:
            nonlocal answered_at
            data = await reader.read(65536)
            answered_at = time.monotonic()
            return data

        read = asyncio.ensure_future(read_answer())
        try:
            while sent < 100 * MB and not read.done():
                writer.write(chunk)
                try:
                    await asyncio.wait_for(writer.drain(), 1)
                except (ConnectionError, TimeoutError):
                    break
                sent += 64 * 1024
            response = await asyncio.wait_for(read, 2)
        finally:
            writer.close()
        assert answered_at - began < 1.0
        assert status_of(response) == 413
        assert sent < 100 * MB  # the server stopped the upload long before its end
        assert seen == []
        await assert_still_serving(port)


@pytest.mark.parametrize("value", [b"12abc", b"-1", b"1 2"])
async def test_malformed_content_length_is_a_400(value: bytes) -> None:
    app, seen = upload_app()
    async with serving(app) as (_, port):
        response = await raw_request(
            port, b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: " + value + b"\r\n\r\n{}"
        )
        assert status_of(response) == 400
        assert seen == []
        await assert_still_serving(port)


async def test_a_very_long_header_is_a_431() -> None:
    app, _ = upload_app()
    async with serving(app) as (_, port):
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"http://127.0.0.1:{port}/ok", headers={"x-long": "a" * 20_000}
            )
        assert response.status_code == 431
        assert response.headers["content-type"] == "application/problem+json"
        await assert_still_serving(port)


async def test_too_many_headers_is_a_431() -> None:
    app, _ = upload_app()
    async with serving(app) as (_, port):
        headers = "".join(f"x-h{i}: {i}\r\n" for i in range(200))
        response = await raw_request(port, f"GET /ok HTTP/1.1\r\nhost: x\r\n{headers}\r\n".encode())
        assert status_of(response) == 431
        await assert_still_serving(port)


async def test_header_values_that_are_not_utf8_are_served() -> None:
    app = app_with()

    @app.http.get("/agent")
    async def agent(user_agent: Annotated[str, Header()]) -> str:
        return user_agent

    async with serving(app) as (_, port):
        response = await raw_request(
            port, b"GET /agent HTTP/1.1\r\nhost: x\r\nuser-agent: caf\xe9 \xff\xfe\r\n\r\n"
        )
        assert status_of(response) == 200
        body = response.split(b"\r\n\r\n", 1)[1]
        assert json.loads(body) == "caf\xe9 \xff\xfe"


async def test_slow_clients_do_not_block_fresh_requests() -> None:
    app, _ = upload_app()
    async with serving(app) as (_, port):
        writers = []
        for _ in range(100):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /ok HTTP/1.1\r\nhost: x\r\nx-slow: ")
            writers.append(writer)
        await asyncio.gather(*(w.drain() for w in writers))
        try:
            began = time.monotonic()
            await assert_still_serving(port)
            assert time.monotonic() - began < 1.0
        finally:
            for writer in writers:
                writer.close()


async def test_connections_over_max_connections_get_503() -> None:
    app = app_with(HTTP__MAX_CONNECTIONS="5")
    entered = 0
    release = asyncio.Event()
    all_in = asyncio.Event()

    @app.http.get("/hold")
    async def hold() -> str:
        nonlocal entered
        entered += 1
        if entered == 4:
            all_in.set()
        await release.wait()
        return "held"

    async with serving(app) as (_, port):
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as c:
            held = [asyncio.ensure_future(c.get("/hold")) for _ in range(4)]
            await asyncio.wait_for(all_in.wait(), 5)
            extra = await asyncio.gather(*(c.get("/hold") for _ in range(3)))
            assert 503 in [r.status_code for r in extra]
            release.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200] * 4
            assert (await c.get("/hold")).status_code == 200


async def test_a_huge_request_head_is_refused_while_it_arrives() -> None:
    app, _ = upload_app()
    async with serving(app) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\nhost: x\r\nx-big: ")
        answer = asyncio.ensure_future(reader.read(200))
        sent = 0
        try:
            while sent < 50 * MB and not answer.done():
                writer.write(b"a" * 65536)
                await asyncio.wait_for(writer.drain(), 2)
                sent += 65536
        except ConnectionError:
            pass
        finally:
            writer.close()
        try:
            response = await asyncio.wait_for(answer, 2)
        except ConnectionError:
            response = b""
        assert sent < 2 * MB  # refused long before the head ended
        assert response == b"" or status_of(response) == 431
        await assert_still_serving(port)


async def test_a_client_trickling_its_head_is_cut_off_with_408() -> None:
    app, _ = upload_app(HTTP__HEAD_TIMEOUT="0.2")
    async with serving(app) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\nhost: x\r\n")
        await writer.drain()
        began = time.monotonic()
        response = await asyncio.wait_for(reader.read(), 5)  # until the server closes
        writer.close()
        assert status_of(response) == 408
        assert 0.15 < time.monotonic() - began < 2
        await assert_still_serving(port)


async def test_a_taken_port_fails_start_up_naming_the_address() -> None:
    import socket

    from cordio import StartupError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app, _ = upload_app(HTTP__PORT=str(port))
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with serving(app):
                pass
