"""Remote workers: worker apps on other hosts join a CURVE broker over TCP with their keys
and leave by DISCONNECT.

The hosts are network namespaces on one LAN (:mod:`tests.zmq.netns`): the broker's host
(the broker as an app runs it, and a client: :mod:`tests.zmq.broker_host`), two worker hosts
and a stranger's host. Each worker is ``cordio run`` of :mod:`tests.apps.zmq_remote_worker`
in its host's namespace, configured by environment variables, and answers with the address
of its host. Skipped, with the reason, where namespaces cannot be made (not root, no
``ip``, refused by the kernel).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.eventually import eventually_sync
from tests.zmq.netns import Network, NetworkUnavailable
from tests.zmq.processes import environment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

#: Seconds between heartbeats, broker and workers: the broker removes a silent worker after
#: three (15 s), longer than any wait below, so a removal seen sooner is no expiry.
HEARTBEAT = 5.0
#: Seconds a worker may take to register, and the broker to remove one that said DISCONNECT.
JOIN, LEAVE = 20.0, 3.0
PORT = 5555


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    try:
        network = Network.build(["broker", "w1", "w2", "stranger"])
    except NetworkUnavailable as exc:
        pytest.skip(f"no network namespaces here: {exc}")
    try:
        yield network
    finally:
        network.close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``keys/``: key pairs made by ``cordio zmq certs``; ``authorized/``: the public keys of
    the client and the workers ``w1`` and ``w2``, not the stranger's."""
    root = tmp_path_factory.mktemp("remote")
    made = subprocess.run(
        [sys.executable, "-m", "cordio", "zmq", "certs", "--dir", str(root / "keys"), "--server"]
        + [arg for name in ("client", "w1", "w2", "stranger") for arg in ("--client", name)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    (root / "authorized").mkdir()
    for name in ("client", "w1", "w2"):
        shutil.copy(root / "keys" / f"{name}.key", root / "authorized")
    return root


class BrokerHost:
    """The broker host's process, asked one JSON line at a time (:mod:`broker_host`)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process, self.log = process, log

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        fd, line, deadline = self.process.stdout.fileno(), b"", time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"the broker host said nothing in {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"the broker host exited:\n{self.log.read_text()}")
            line += chunk
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, command: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(command).encode() + b"\n")
        except BrokenPipeError:
            raise AssertionError(f"the broker host exited:\n{self.log.read_text()}") from None
        return self.read(timeout)

    def state(self) -> dict[str, Any]:
        return self.call({"state": True})

    def ask(self, count: int) -> list[dict[str, Any]]:
        """The answers to ``count`` requests to ``where``, one after the other."""
        answers: list[dict[str, Any]] = self.call({"ask": count}, 15.0 + 3 * count)["answers"]
        return answers

    def registered(self) -> int:
        return sum(w["service"] == "where" for w in self.state()["workers"])


@pytest.fixture(scope="module")
def broker(
    network: Network, keys: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerHost]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            network["broker"].command(
                sys.executable,
                "-m",
                "tests.zmq.broker_host",
                endpoint(network),
                str(keys / "keys"),
                str(keys / "authorized"),
                str(HEARTBEAT),
            ),
            env=environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=out,
            bufsize=0,
        )
    host = BrokerHost(process, log)
    try:
        assert host.read(timeout=20) == {"ready": [endpoint(network)]}
        yield host
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the end of its commands: it stops
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def endpoint(network: Network) -> str:
    """Where the broker binds and the workers connect: the broker host's own address."""
    return f"tcp://{network['broker'].address}:{PORT}"


StartWorker = Callable[[str], subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(
    network: Network, keys: Path, broker: BrokerHost, tmp_path: Path
) -> Iterator[StartWorker]:
    """``start_worker(role)``: the worker app in that host's namespace with that host's key
    pair. Those still running after the test get SIGTERM (SIGKILL after 10 s); the broker
    must have none left registered."""
    started: list[subprocess.Popen[bytes]] = []

    def start(role: str) -> subprocess.Popen[bytes]:
        settings = {
            "URL": endpoint(network),
            "HEARTBEAT_INTERVAL": str(HEARTBEAT),
            "CURVE__SECRET_FILE": str(keys / "keys" / f"{role}.key_secret"),
            "CURVE__SERVER_PUBLIC_FILE": str(keys / "keys" / "server.key"),
        }
        env = {
            **environment(),
            **{f"REMOTE__ZMQ__{key}": value for key, value in settings.items()},
            "REMOTE__ADMIN__ENABLED": "false",
        }
        with (tmp_path / f"{role}.log").open("ab") as out:
            process = subprocess.Popen(
                network[role].command(
                    sys.executable, "-m", "cordio", "run", "tests.apps.zmq_remote_worker:app"
                ),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for log in sorted(tmp_path.glob("*.log")):  # shown when the test failed
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    eventually_sync(lambda: broker.registered() == 0, timeout=LEAVE, what="no worker left")


def test_workers_on_two_hosts_join_with_their_keys_and_both_serve(
    network: Network, broker: BrokerHost, start_worker: StartWorker
) -> None:
    w1, w2 = start_worker("w1"), start_worker("w2")
    eventually_sync(lambda: broker.registered() == 2, timeout=JOIN, what="w1 and w2 registered")
    answers = broker.ask(6)
    hosts = {answer["address"] for answer in answers}
    assert hosts == {network["w1"].address, network["w2"].address}, answers
    # `ip netns exec` runs the worker itself: the pids are those of the processes started
    assert {answer["pid"] for answer in answers} == {w1.pid, w2.pid}


def test_a_worker_whose_key_is_not_authorized_cannot_join(
    network: Network, broker: BrokerHost, start_worker: StartWorker
) -> None:
    stranger = network["stranger"].address
    refused_before = broker.state()["refused"].get("key", 0)
    intruder = start_worker("stranger")
    start_worker("w1")
    eventually_sync(lambda: broker.registered() == 1, timeout=JOIN, what="w1 registered")

    def stranger_refused() -> dict[str, Any] | None:
        state = broker.state()
        named = any(f"from {stranger}:" in message for message in state["refusals"])
        return state if named and state["refused"].get("key", 0) > refused_before else None

    state = eventually_sync(stranger_refused, timeout=JOIN, what="the stranger's key refused")
    assert [w["service"] for w in state["workers"]] == ["where"]  # w1 alone
    answers = broker.ask(4)
    assert {answer["address"] for answer in answers} == {network["w1"].address}, answers
    assert intruder.poll() is None  # it keeps trying, in vain
    assert broker.registered() == 1


def test_a_worker_stopped_with_sigterm_leaves_by_disconnect_at_once(
    network: Network, broker: BrokerHost, start_worker: StartWorker
) -> None:
    w1 = start_worker("w1")
    start_worker("w2")
    eventually_sync(lambda: broker.registered() == 2, timeout=JOIN, what="w1 and w2 registered")
    both = {network["w1"].address, network["w2"].address}
    assert {answer["address"] for answer in broker.ask(4)} == both
    before = broker.state()["disconnects"]

    stopped = time.monotonic()
    w1.send_signal(signal.SIGTERM)
    assert w1.wait(timeout=10) == 0  # a clean shutdown
    eventually_sync(lambda: broker.registered() == 1, timeout=LEAVE, what="w1 removed")
    removed_after = time.monotonic() - stopped

    after = broker.state()["disconnects"]
    assert after.get("disconnect", 0) == before.get("disconnect", 0) + 1, (before, after)
    assert after.get("expired", 0) == before.get("expired", 0), (before, after)
    assert removed_after < HEARTBEAT * 3  # long before it could have expired
    answers = broker.ask(4)
    assert {answer["address"] for answer in answers} == {network["w2"].address}, answers
