"""The thread relay: results matched to items, back-pressure that holds, failures counted and
logged while it keeps serving, a stop that leaves no thread or socket behind, concurrent
callers, and malformed frames dropped."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import zmq.asyncio  # binds zmq too

from cordio.zmq.relay import (
    ProcessingError,
    Relay,
    RelayClosed,
    RelayError,
    RelayOptions,
    RelayResult,
)
from tests.eventually import eventually

pytestmark = pytest.mark.timeout(30)

StartRelay = Callable[..., Awaitable[Relay]]


@pytest.fixture
async def start_relay() -> AsyncIterator[StartRelay]:
    """``await start_relay(func, **options)``: a started relay, stopped after the test."""
    relays: list[Relay] = []

    async def start(func: Callable[[Any], Any], name: str = "test", **options: Any) -> Relay:
        relay = Relay(func, RelayOptions(**options), name=name)
        await relay.start()
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        await relay.stop()


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event the processing functions of a test wait on; set at the end whatever
    happened, so no thread stays blocked."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def foreign() -> Iterator[zmq.asyncio.Socket]:
    """A PUSH socket of another producer on the shared context."""
    sock = zmq.asyncio.Context.instance().socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    yield sock
    sock.close()


def relay_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("cordio.relay:")}


def tagged(value: Any) -> list[Any]:
    """A processing function: the value and the thread that saw it."""
    return [value, threading.current_thread().name]


async def take(relay: Relay, count: int) -> list[RelayResult]:
    results: list[RelayResult] = []
    async for result in relay:
        results.append(result)
        if len(results) == count:
            break
    return results


class Sender:
    """Sends 0, 1, ... ``count - 1`` through ``relay`` as fast as it takes them, counting."""

    def __init__(self, relay: Relay, count: int) -> None:
        self.sent = 0
        self.task = asyncio.create_task(self._send(relay, count))

    async def _send(self, relay: Relay, count: int) -> None:
        for i in range(count):
            await relay.send(i)
            self.sent += 1

    async def plateau(self) -> int:
        """Wait until the count has not moved for 0.2 s; return it."""
        last = -1
        while self.sent != last:
            last = self.sent
            await asyncio.sleep(0.2)
        return last


# -- results ------------------------------------------------------------------------------


async def test_call_gets_its_own_result_from_a_pool_of_threads(start_relay: StartRelay) -> None:
    def slow_tag(value: Any) -> list[Any]:
        time.sleep(0.001)
        return tagged(value)

    relay = await start_relay(slow_tag, threads=4, hwm=5)
    results = await asyncio.gather(*(relay.call({"n": i}) for i in range(200)))
    assert [value for value, _ in results] == [{"n": i} for i in range(200)]
    assert len({thread for _, thread in results}) > 1  # dealt among the threads
    assert relay.processed == 200
    assert (relay.failed, relay.malformed, relay.dropped, relay.lost) == (0, 0, 0, 0)
    assert relay.in_flight == 0


async def test_sent_items_come_back_with_their_ids_in_order_per_thread(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(tagged, threads=3, hwm=100)
    ids = {await relay.send(i): i for i in range(90)}
    results = await take(relay, 90)
    assert all(result.ok for result in results)
    assert {result.id: result.value[0] for result in results} == ids
    per_thread: dict[str, list[int]] = defaultdict(list)
    for result in results:
        per_thread[result.value[1]].append(result.value[0])
    for values in per_thread.values():
        assert values == sorted(values)


async def test_raw_codec_carries_bytes_as_they_are(start_relay: StartRelay) -> None:
    relay = await start_relay(bytes.upper, codec="raw")
    assert await relay.call(b"\x00abc\xff") == b"\x00ABC\xff"
    assert await relay.call(bytearray(b"x")) == b"X"
    with pytest.raises(TypeError, match="raw codec carries bytes"):
        await relay.call("text")
    assert relay.in_flight == 0


async def test_a_sync_context_of_the_app_is_used_for_its_inproc_endpoints() -> None:
    context: zmq.Context[Any] = zmq.Context()
    try:
        async with Relay(tagged, context=context) as relay:
            assert (await relay.call(1))[0] == 1
            # the endpoints live in that context's namespace: taken there, free elsewhere
            taken = context.socket(zmq.PULL)
            with pytest.raises(zmq.ZMQError):
                taken.bind(relay.output_endpoint)
            taken.close(linger=0)
    finally:
        context.term()


# -- back-pressure ------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 3])
async def test_a_blocked_function_makes_the_sender_wait_within_the_bound(
    start_relay: StartRelay, gate: threading.Event, threads: int
) -> None:
    hwm = 10

    def blocked(value: int) -> int:
        gate.wait()
        return value

    relay = await start_relay(blocked, threads=threads, hwm=hwm)
    sender = Sender(relay, 100)
    plateau = await sender.plateau()
    bound = threads * (hwm + 2)  # hwm + 1 queued for each thread, one in its hands
    assert hwm <= plateau <= bound
    assert not sender.task.done()  # the sender waits instead of queueing more
    assert relay.in_flight == plateau + 1  # what ZeroMQ holds, and the one waiting
    assert relay.processed == 0
    gate.set()
    results = await take(relay, 100)
    await sender.task
    assert sorted(result.value for result in results) == list(range(100))
    assert relay.processed == 100
    assert relay.in_flight == 0


async def test_results_nobody_takes_hold_the_sender_back_too(start_relay: StartRelay) -> None:
    threads, hwm = 2, 5
    relay = await start_relay(tagged, threads=threads, hwm=hwm)
    sender = Sender(relay, 500)
    plateau = await sender.plateau()
    # input queues and hands, result queues and the one each thread waits to send, and
    # the results waiting for async for
    bound = threads * (hwm + 2) + threads * (hwm + 2) + hwm
    assert plateau <= bound
    assert not sender.task.done()
    results = await take(relay, 500)
    await sender.task
    assert sorted(result.value[0] for result in results) == list(range(500))


# -- failures -----------------------------------------------------------------------------


def picky(value: int) -> int:
    if value == 3:
        return value // 0
    if value % 2:
        raise ValueError(f"odd {value}")
    return value * 10


async def test_a_raising_function_is_counted_logged_once_with_a_traceback_and_serving_goes_on(
    start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cordio.zmq.relay")
    relay = await start_relay(picky, threads=2)
    outcomes: list[Any] = []
    for value in range(8):
        try:
            outcomes.append(await relay.call(value))
        except ProcessingError as exc:
            outcomes.append((exc.type_name, exc.message))
    assert outcomes == [
        0,
        ("ValueError", "odd 1"),
        20,
        ("ZeroDivisionError", "integer division or modulo by zero"),
        40,
        ("ValueError", "odd 5"),
        60,
        ("ValueError", "odd 7"),
    ]
    assert (relay.processed, relay.failed) == (4, 4)
    lines = [r for r in caplog.records if "raised" in r.getMessage()]
    assert [r.getMessage().split(" raised ")[1] for r in lines] == [
        "ValueError: odd 1",
        "ZeroDivisionError: integer division or modulo by zero",
        "ValueError: odd 5",
        "ValueError: odd 7",
    ]
    # a traceback the first time each type is seen, then one line each
    assert [r.exc_info is not None for r in lines] == [True, True, False, False]
    assert await relay.call(100) == 1000  # still serving


async def test_every_traceback_at_debug_level(
    start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cordio.zmq.relay")
    relay = await start_relay(picky)
    for value in (1, 5):
        with pytest.raises(ProcessingError):
            await relay.call(value)
    lines = [r for r in caplog.records if "raised" in r.getMessage()]
    assert [r.exc_info is not None for r in lines] == [True, True]


async def test_failed_items_are_forwarded_as_errors_by_default(start_relay: StartRelay) -> None:
    relay = await start_relay(picky)
    ids = [await relay.send(value) for value in (0, 1, 2)]
    results = await take(relay, 3)
    assert [r.id for r in results] == ids
    assert [r.ok for r in results] == [True, False, True]
    error = results[1].error
    assert isinstance(error, ProcessingError)
    assert (error.type_name, error.message) == ("ValueError", "odd 1")
    assert results[1].value is None


async def test_failed_items_are_skipped_and_counted_with_errors_drop(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(picky, errors="drop")
    for value in (0, 1, 2, 3, 4):
        await relay.send(value)
    results = await take(relay, 3)
    assert [r.value for r in results] == [0, 20, 40]
    assert (relay.failed, relay.dropped) == (2, 2)
    with pytest.raises(ProcessingError, match="odd 1"):  # a caller awaiting it still learns
        await relay.call(1)


async def test_a_result_the_codec_cannot_carry_is_a_failure(start_relay: StartRelay) -> None:
    relay = await start_relay(lambda value: object())
    with pytest.raises(ProcessingError) as caught:
        await relay.call(1)
    assert caught.value.type_name == "TypeError"
    assert relay.failed == 1
    with pytest.raises(TypeError):  # nor an item: refused before it is sent
        await relay.call(object())
    assert relay.in_flight == 0


async def test_a_cancelled_call_leaves_its_result_counted_as_dropped(
    start_relay: StartRelay, gate: threading.Event
) -> None:
    relay = await start_relay(lambda value: gate.wait() and value)
    call = asyncio.create_task(relay.call(1))
    await eventually(lambda: relay.in_flight == 1)  # sent at once: the queues are empty
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    gate.set()
    await eventually(lambda: relay.dropped == 1, what="the result nobody waits for")
    assert relay.in_flight == 0
    assert await relay.call(2) == 2


# -- stop ---------------------------------------------------------------------------------


def endpoints_free(relay: Relay) -> bool:
    """Whether every endpoint of the relay can be bound again: its sockets are closed (libzmq
    releases an endpoint when its reaper thread has taken the closed socket: soon after)."""
    context = zmq.asyncio.Context.instance()
    for endpoint in (*relay.input_endpoints, relay.output_endpoint):
        sock = context.socket(zmq.PULL)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError:
            return False
        finally:
            sock.close(linger=0)
    return True


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_stop_with_items_in_flight_loses_them_counted_and_leaves_no_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Relay(tagged) as warm:  # the shared context and its descriptors exist
        await warm.call(0)
    before_threads, before_fds = set(threading.enumerate()), open_fds()

    def slow(value: int) -> int:
        time.sleep(0.05)
        return value

    relay = Relay(slow, RelayOptions(threads=2, hwm=10, grace=0.2, join_timeout=2))
    await relay.start()
    assert len(relay_threads()) == 2
    calls = [asyncio.create_task(relay.call(i)) for i in range(60)]
    await eventually(lambda: relay.processed >= 2)
    await relay.stop()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    answered = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, RelayClosed)]
    assert len(answered) + len(refused) == 60
    assert 4 <= len(answered) < 60  # the grace let some finish
    assert len(answered) == relay.processed
    lost = [o for o in refused if "came back" in str(o)]
    assert len(lost) == relay.lost > 0  # handed over and lost, counted
    assert all("before the item was sent" in str(o) for o in refused if o not in lost)
    assert "lost at stop" in caplog.text
    assert relay_threads() == set()
    assert set(threading.enumerate()) == before_threads
    await eventually(lambda: endpoints_free(relay), timeout=2, what="endpoints released")
    await eventually(lambda: open_fds() <= before_fds, what="descriptors closed")
    with pytest.raises(RelayClosed):
        await relay.call(1)


async def test_items_finished_within_the_grace_period_are_answered(start_relay: StartRelay) -> None:
    def slow(value: int) -> int:
        time.sleep(0.01)
        return value

    relay = await start_relay(slow, threads=2, hwm=5, grace=5)
    calls = [asyncio.create_task(relay.call(i)) for i in range(30)]
    await eventually(lambda: relay.processed >= 1)
    await relay.stop()
    assert await asyncio.gather(*calls) == list(range(30))
    assert relay.lost == 0
    assert relay_threads() == set()


async def test_a_thread_stuck_in_the_function_is_named_and_ends_when_it_returns(
    gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Relay(lambda value: gate.wait(), RelayOptions(grace=0, join_timeout=0.2), name="st")
    await relay.start()
    call = asyncio.create_task(relay.call(1))
    await eventually(lambda: relay.in_flight == 1)  # sent at once: the queues are empty
    await relay.stop()
    assert "cordio.relay:st:0 still in" in caplog.text
    with pytest.raises(RelayClosed):
        await call
    assert relay.lost == 1
    gate.set()
    await eventually(lambda: relay_threads() == set(), what="the stuck thread to end")
    await eventually(lambda: endpoints_free(relay), timeout=2, what="endpoints released")


async def test_the_stream_ends_at_stop(start_relay: StartRelay) -> None:
    relay = await start_relay(tagged)
    await relay.send(1)
    await eventually(lambda: relay.in_flight == 0)
    readers = [asyncio.create_task(take(relay, 10)) for _ in range(2)]
    await relay.stop()
    got = await asyncio.gather(*readers)
    assert sorted(len(results) for results in got) == [0, 1]


async def test_lifecycle_misuse(start_relay: StartRelay) -> None:
    relay = Relay(tagged)
    with pytest.raises(RelayClosed, match="not running"):
        await relay.send(1)
    await relay.stop()  # never started: nothing to do
    with pytest.raises(RuntimeError, match="runs once"):
        await relay.start()
    running = await start_relay(tagged)
    with pytest.raises(RuntimeError, match="runs once"):
        await running.start()
    await running.stop_accepting()
    assert not running.running
    with pytest.raises(RelayClosed):
        await running.call(1)
    await running.stop()
    await running.stop()  # again: nothing to do


# -- concurrency --------------------------------------------------------------------------


async def test_a_hundred_tasks_through_one_relay_each_get_their_own_results(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(lambda pair: [pair[0], pair[1] * 2], threads=4, hwm=10)

    async def client(n: int) -> list[Any]:
        return [await relay.call([n, i]) for i in range(20)]

    answers = await asyncio.gather(*(client(n) for n in range(100)))
    for n, answer in enumerate(answers):
        assert answer == [[n, i * 2] for i in range(20)]
    assert relay.processed == 2000


# -- bad input ----------------------------------------------------------------------------


async def test_malformed_frames_on_the_input_are_counted_and_dropped(
    start_relay: StartRelay, foreign: zmq.asyncio.Socket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cordio.zmq.relay")
    relay = await start_relay(tagged, threads=2)
    foreign.connect(relay.input_endpoints[1])
    bad: list[list[bytes]] = [
        [b"one frame only"],
        [b"", b"\x01"],  # an empty id
        [b"x" * 256, b"\x01"],  # an id too long
        [b"id", b"\xc1"],  # never valid MessagePack
        [b"id", b"\x01\x02"],  # MessagePack with bytes left over
        [b"a", b"\x01", b"three"],
    ]
    for frames in bad:
        await foreign.send_multipart(frames)
    await foreign.send_multipart([b"mine", b"\x07"])  # a well-formed item of another producer
    (result,) = await take(relay, 1)
    assert (result.id, result.value) == (b"mine", [7, "cordio.relay:test:1"])
    assert relay.malformed == len(bad)
    assert await relay.call("still serving") == ["still serving", "cordio.relay:test:0"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # the first of each kind (the frames, the body), the rest at debug level
    assert len(warnings) == 2
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == len(bad)


async def test_malformed_frames_on_the_output_are_counted_and_dropped(
    start_relay: StartRelay, foreign: zmq.asyncio.Socket
) -> None:
    relay = await start_relay(tagged)
    foreign.connect(relay.output_endpoint)
    bad: list[list[bytes]] = [
        [b"id", b"ok"],
        [b"id", b"maybe", b"\x01"],
        [b"id", b"ok", b"\xc1"],
        [b"id", b"error", b"not json"],
        [b"id", b"error", b'{"type": "X"}'],
    ]
    for frames in bad:
        await foreign.send_multipart(frames)
    await foreign.send_multipart([b"x", b"error", b'{"type": "X", "message": "m"}'])
    (result,) = await take(relay, 1)
    assert result.error is not None
    assert str(result.error) == "X: m"
    assert relay.malformed == len(bad)
    assert await relay.call(1) == [1, "cordio.relay:test:0"]


# -- shape --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"threads": 0}, "threads"),
        ({"hwm": 0}, "hwm"),
        ({"grace": -1}, "grace"),
        ({"join_timeout": 0}, "join_timeout"),
        ({"codec": "pickle"}, "codec"),
        ({"errors": "ignore"}, "errors"),
    ],
)
def test_options_refuse_values_out_of_range(values: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        RelayOptions(**values)


def test_a_relay_needs_a_name() -> None:
    with pytest.raises(ValueError, match="name"):
        Relay(tagged, name="")


def test_the_relay_has_the_service_shape() -> None:
    """``cordio.lifecycle.Service``: async ``start()``, ``stop()`` and ``stop_accepting()``."""
    for method in (Relay.start, Relay.stop, Relay.stop_accepting):
        assert inspect.iscoroutinefunction(method)
    assert issubclass(RelayClosed, RelayError)
    assert issubclass(ProcessingError, RelayError)


async def test_an_error_reply_is_masked_with_the_apps_masker(start_relay: StartRelay) -> None:
    """The threads run outside the app's context; what they answer is masked all the same."""
    from cordio.observe.masking import Masker, use_masker

    secret = "hunter2-very-secret"

    def leaky(value: int) -> int:
        raise ConnectionError(f"login failed for password={secret} at amqp://u:{secret}@mq")

    use_masker(Masker().with_secrets([secret]))
    try:
        relay = await start_relay(leaky, name="leaky")
        with pytest.raises(ProcessingError) as caught:
            await relay.call(1)
    finally:
        use_masker(None)
    assert secret not in caught.value.message
    assert "login failed" in caught.value.message
