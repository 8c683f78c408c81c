"""NATS JetStream consume: 200-byte JSON messages on one stream, consumed and acked by a
trivial handler that validates a pydantic model, at most 100 unacked.

Contenders, each a separate consumer process pinned to core 1 (the load generator — the
NATS server — runs where the scheduler puts it):

- ``cordio``: ``@app.consume(subject, max_concurrency=100)`` with ``broker.url=nats://...``
  and ``broker.prefetch=100`` (a durable pull consumer; the process holds at most 100
  unacked and fetches again once half of them are settled);
- ``nats-py``: raw nats-py, a durable pull consumer fetching batches of 100,
  ``Model.model_validate_json`` and ``ack`` per message;
- ``faststream``: a FastStream ``NatsBroker`` JetStream pull subscriber
  (``pull_sub=PullSub(batch_size=100)``: it fetches 100 and handles them concurrently, acking
  each after its handler returns, before it fetches again).

All read the stream cordio would create for the subject, ``CORDIO_<subject>`` (unsafe
characters as ``_``), each through its own durable consumer (cordio's is
``cordio_<subject>``). Before each run the stream is deleted (with its consumers), created
afresh and filled with ``--messages`` messages (not timed); the consumer reports the time
from its first to its last message and its CPU time. Contenders alternate over ``--rounds``
rounds; medians. Prints ``ratio: cordio/nats-py X`` and ``ratio: cordio/faststream Y``.

Needs NATS with JetStream on 127.0.0.1:4222 and the peers (``pip install
'cordio[bench,nats]' faststream[nats]``). Run from the repository root:
``.venv/bin/python bench/nats_consume.py``.
"""

import asyncio

from harness import Event, Meter, body, child, main

URL = "nats://127.0.0.1:4222"
SUBJECT = "cordio.bench.consume"
STREAM = "CORDIO_cordio_bench_consume"  # the stream cordio creates for SUBJECT
CONTENDERS = ["cordio", "nats-py", "faststream"]
BATCH = 100


async def fill(n: int) -> None:
    """Delete the stream and its consumers; with ``n`` > 0 create it and put ``n`` in it."""
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(URL)
    try:
        js = nc.jetstream()
        try:
            await js.delete_stream(STREAM)
        except NotFoundError:
            pass
        if n == 0:
            return
        await js.add_stream(name=STREAM, subjects=[SUBJECT])
        for start in range(0, n, 1000):
            await asyncio.gather(
                *(
                    js.publish(SUBJECT, body(i), stream=STREAM)
                    for i in range(start, min(n, start + 1000))
                )
            )
        info = await js.stream_info(STREAM)
        if info.state.messages != n:
            raise SystemExit(f"the stream holds {info.state.messages} messages, not {n}")
    finally:
        await nc.close()


async def consume_cordio(n: int) -> None:
    from cordio import App
    from cordio.config import EnvSource

    environ = {
        "B__BROKER__URL": URL,
        "B__BROKER__PREFETCH": str(BATCH),
        "B__LOG__LEVEL": "WARNING",
        "B__ADMIN__ENABLED": "false",
    }
    app = App("b", config=[EnvSource("b", environ=environ)])
    meter = Meter(n)

    @app.consume(SUBJECT, max_concurrency=BATCH)
    async def handle(event: Event) -> None:
        meter.tick()

    async with app.running(serve=False):
        await meter.done.wait()
    meter.report()


async def consume_nats_py(n: int) -> None:
    import nats
    from nats.errors import TimeoutError as FetchTimeout
    from nats.js.api import AckPolicy, ConsumerConfig

    meter = Meter(n)
    nc = await nats.connect(URL)
    try:
        js = nc.jetstream()
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=BATCH)
        sub = await js.pull_subscribe(
            SUBJECT, durable="bench_nats_py", stream=STREAM, config=config
        )
        while meter.count < n:
            try:
                msgs = await sub.fetch(batch=BATCH, timeout=1)
            except FetchTimeout:
                continue
            for msg in msgs:
                Event.model_validate_json(msg.data)
                await msg.ack()
                meter.tick()
    finally:
        await nc.drain()
    meter.report()


async def consume_faststream(n: int) -> None:
    from faststream.nats import JStream, NatsBroker, PullSub

    meter = Meter(n)
    broker = NatsBroker(URL, logger=None)

    @broker.subscriber(
        SUBJECT,
        stream=JStream(STREAM, declare=False),
        durable="bench_faststream",
        pull_sub=PullSub(batch_size=BATCH, timeout=1),
    )
    async def handle(event: Event) -> None:
        meter.tick()

    async with broker:
        await broker.start()
        await meter.done.wait()
    meter.report()


CONSUMERS = {
    "cordio": consume_cordio,
    "nats-py": consume_nats_py,
    "faststream": consume_faststream,
}


def run(name: str, n: int) -> dict[str, float]:
    asyncio.run(fill(n))
    return child(__file__, name, n)


if __name__ == "__main__":
    main(
        __doc__,
        CONSUMERS,
        run,
        "{messages} messages x {rounds} rounds, " + f"{BATCH} unacked at most, medians",
        after=lambda: asyncio.run(fill(0)),
    )
