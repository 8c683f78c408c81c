"""``/admin/zmq``: what the broker, the app's workers and the supervised processes are
doing, and scaling the processes over HTTP behind the admin token."""

from __future__ import annotations

import re
import uuid

import pytest

from cordio.testing import TestApp
from cordio.zmq.client import ZmqClient
from cordio.zmq.supervisor import MAX_PROCESSES, WorkerSupervisor
from tests.conftest import free_port
from tests.eventually import eventually
from tests.zmq.test_supervisor import pids, supervising_app
from tests.zmq.test_transport import shop

TOKEN = "zmq-admin-token-0123456789abcdef"
GIVEN = {"Authorization": f"Bearer {TOKEN}"}


async def test_the_overview_lists_services_workers_and_queues() -> None:
    url = f"inproc://cordio-test-{uuid.uuid4().hex}"
    app = shop(url)
    async with TestApp(app) as client:
        zmq = app.get(ZmqClient)
        assert (await zmq.call("calc", "add", 1, 2)) == 3

        async def both_registered() -> bool:
            body = (await client.get("/admin/zmq")).json()
            return {w["service"] for w in body["broker"]["workers"]} == {"pricing", "calc"}

        await eventually(both_registered, what="both workers registered")
        body = (await client.get("/admin/zmq")).json()
        broker = body["broker"]
        assert broker["endpoints"] == [url]
        assert broker["requests"] >= 1
        assert broker["replies"] >= 1
        assert {s["name"]: s["queued"] for s in broker["services"]} == {"pricing": 0, "calc": 0}
        calc = next(w for w in broker["workers"] if w["service"] == "calc")
        assert calc["served"] == 1
        assert calc["busy"] is False
        assert calc["host"] is None  # inproc: no address
        assert calc["version"] == "MDP/0.1"
        served = {s["service"]: s["served"] for s in body["services"]}
        assert served == {"pricing": 0, "calc": 1}
        assert "processes" not in body
        scraped = (await client.get("/metrics")).text
        assert 'cordio_zmq_broker_workers{service="calc",state="idle"} 1.0' in scraped
        assert 'cordio_zmq_broker_queued{service="pricing"} 0.0' in scraped
        assert 'cordio_zmq_broker_messages_total{outcome="reply"}' in scraped
        calls = r'cordio_handler_calls_total\{handler="[\w.]*add",transport="zmq"\} 1\.0'
        assert re.search(calls, scraped), scraped
        assert 'cordio_resource_pool{resource="zmq_client",state="max"} 64.0' in scraped
        assert 'cordio_resource_pool{resource="zmq_client",state="busy"} 0.0' in scraped
        missing = await client.get("/admin/zmq/workers")
        assert missing.status_code == 404
        assert "zmq.workers.auto_start" in missing.json()["detail"]


@pytest.mark.slow
async def test_worker_processes_are_listed_and_scaled_over_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    app = supervising_app(port, 1, monkeypatch, SUP__ADMIN__TOKEN=TOKEN)
    async with TestApp(app) as http:
        assert http.runtime is not None
        (supervisor,) = [s for s in http.runtime.services if isinstance(s, WorkerSupervisor)]
        zmq = app.get(ZmqClient)
        await pids(zmq, 1)

        assert (await http.get("/admin/zmq")).status_code == 401
        assert (await http.post("/admin/zmq/workers", json={"count": 2})).status_code == 401
        assert len(supervisor.list()) == 1

        body = (await http.get("/admin/zmq", headers=GIVEN)).json()
        assert len(body["processes"]) == 1
        echo = [w for w in body["broker"]["workers"] if w["service"] == "echo"]
        assert len(echo) == 1
        assert echo[0]["host"] == "127.0.0.1"
        assert [s["service"] for s in body["services"]] == ["cordio.workers"]

        for hostile in (
            b"not json",
            b'{"count": -1}',
            f'{{"count": {MAX_PROCESSES + 1}}}'.encode(),
            b'{"count": "2"}',
            b'{"count": true}',
            b'{"count": 2.0}',
            b'{"count": 2, "and": "more"}',
            b"[2]",
            b"\xff\xfe",
            b"",
        ):
            refused = await http.post("/admin/zmq/workers", content=hostile, headers=GIVEN)
            assert refused.status_code == 400, hostile
            assert refused.headers["content-type"] == "application/problem+json"
        huge = b'{"count": 2' + b" " * 4096 + b"}"
        assert (
            await http.post("/admin/zmq/workers", content=huge, headers=GIVEN)
        ).status_code == 413
        assert len(supervisor.list()) == 1  # nothing changed

        scaled = await http.post("/admin/zmq/workers", json={"count": 2}, headers=GIVEN)
        assert scaled.status_code == 200
        assert len(scaled.json()) == 2
        assert {row["pid"] for row in scaled.json()} == {row["pid"] for row in supervisor.list()}
        await pids(zmq, 2)
        listed = (await http.get("/admin/zmq/workers", headers=GIVEN)).json()
        assert [row["index"] for row in listed] == [0, 1]
        assert all(row["alive"] for row in listed)
