"""RabbitMQ publish: persistent 200-byte JSON messages to one durable queue, each publish
waiting for its publisher confirm.

Contenders, each a separate publisher process pinned to core 1 (the RabbitMQ server runs
where the scheduler puts it):

- ``cordio``: the injected ``Publisher`` of an app with ``broker.url=amqp://...``,
  ``await publisher.publish(queue, event)``;
- ``aio-pika``: raw aio-pika, a channel with ``publisher_confirms=True``,
  ``default_exchange.publish`` of a persistent ``aio_pika.Message``;
- ``faststream``: a FastStream ``RabbitBroker.publish(event, queue, persist=True)`` (its
  channels confirm by default).

Every contender gets the same ``Event`` models (built from ``body()`` before timing) and
encodes them itself, as compact JSON (195 bytes); every contender publishes in windows of
100 concurrent publishes (``asyncio.gather``), each waiting for its confirm, so at most 100
are unconfirmed at once. Before each run the queue is deleted and declared afresh; after
it the queue must hold ``--messages`` messages. The publisher reports the time and CPU time
from its first publish to its last confirm. Contenders alternate over ``--rounds`` rounds;
medians. Prints ``ratio: cordio/aio-pika X`` and ``ratio: cordio/faststream Y``.

Needs RabbitMQ on 127.0.0.1:5672 and the peers (``pip install 'cordio[bench,amqp]'
faststream[rabbit]``). Run from the repository root: ``.venv/bin/python bench/amqp_publish.py``.
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from harness import Event, body, child, main

URL = "amqp://guest:guest@127.0.0.1:5672/"
QUEUE = "cordio.bench.publish"
CONTENDERS = ["cordio", "aio-pika", "faststream"]
WINDOW = 100


async def reset(declare: bool) -> int:
    """Delete the queue and, if ``declare``, declare it afresh; return the messages it held."""
    import aio_pika

    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        try:
            held = (await channel.declare_queue(QUEUE, passive=True)).declaration_result
            count = held.message_count or 0
        except aio_pika.exceptions.ChannelClosed:
            channel = await connection.channel()
            count = 0
        await channel.queue_delete(QUEUE)
        if declare:
            await channel.declare_queue(QUEUE, durable=True)
    return count


async def timed(n: int, publish: Callable[[Event], Awaitable[object]]) -> None:
    events = [Event.model_validate_json(body(i)) for i in range(n)]
    start, start_cpu = time.perf_counter(), time.process_time()
    for first in range(0, n, WINDOW):
        await asyncio.gather(*(publish(e) for e in events[first : first + WINDOW]))
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    print(json.dumps({"rate": n / wall, "cpu_us": cpu / n * 1e6}))


async def publish_cordio(n: int) -> None:
    from cordio import App
    from cordio.config import EnvSource
    from cordio.messaging import Publisher

    environ = {
        "B__BROKER__URL": URL,
        "B__LOG__LEVEL": "WARNING",
        "B__ADMIN__ENABLED": "false",
    }
    app = App("b", config=[EnvSource("b", environ=environ)])
    app.publishes(QUEUE, Event)  # registers the broker and publisher resources
    app.dependency(Publisher)  # marks the publisher used, so it starts with the app

    async with app.running(serve=False):
        publisher: Publisher = app.get(Publisher)
        await timed(n, lambda event: publisher.publish(QUEUE, event))


async def publish_aio_pika(n: int) -> None:
    import aio_pika

    connection = await aio_pika.connect_robust(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange

        async def publish(event: Event) -> None:
            message = aio_pika.Message(
                event.model_dump_json().encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
            )
            await exchange.publish(message, routing_key=QUEUE)

        await timed(n, publish)


async def publish_faststream(n: int) -> None:
    from faststream.rabbit import RabbitBroker

    broker = RabbitBroker(URL, logger=None)
    async with broker:
        await broker.connect()
        await timed(n, lambda event: broker.publish(event, QUEUE, persist=True))


PUBLISHERS = {
    "cordio": publish_cordio,
    "aio-pika": publish_aio_pika,
    "faststream": publish_faststream,
}


def run(name: str, n: int) -> dict[str, float]:
    asyncio.run(reset(declare=True))
    result = child(__file__, name, n)
    held = asyncio.run(reset(declare=False))
    if held != n:
        raise SystemExit(f"{name}: the queue holds {held} messages, not {n}")
    return result


if __name__ == "__main__":
    main(
        __doc__,
        PUBLISHERS,
        run,
        "{messages} messages x {rounds} rounds, confirms, " + f"{WINDOW} in flight, medians",
    )
