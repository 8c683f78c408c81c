"""RabbitMQ consume: persistent 200-byte JSON messages on one durable queue, consumed and
acked by a trivial handler that validates a pydantic model, prefetch 100.

Contenders, each a separate consumer process pinned to core 1 (the load generator — the
RabbitMQ server — runs where the scheduler puts it):

- ``cordio``: ``@app.consume`` with ``broker.url=amqp://...``;
- ``aio-pika``: raw aio-pika, ``Model.model_validate_json`` and ``ack`` per message;
- ``faststream``: a FastStream ``RabbitBroker`` subscriber.

Before each run the queue is filled with ``--messages`` messages (not timed); the consumer
reports the time from its first to its last message and its CPU time. Contenders alternate
over ``--rounds`` rounds; medians. Prints ``ratio: cordio/aio-pika X`` and
``ratio: cordio/faststream Y``.

Needs RabbitMQ on 127.0.0.1:5672 and the peers (``pip install 'cordio[bench,amqp]'
faststream[rabbit]``). Run from the repository root: ``.venv/bin/python bench/amqp_consume.py``.
"""

import asyncio

from harness import Event, Meter, body, child, main

URL = "amqp://guest:guest@127.0.0.1:5672/"
QUEUE = "cordio.bench.consume"
CONTENDERS = ["cordio", "aio-pika", "faststream"]


async def fill(n: int) -> None:
    import aio_pika

    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(QUEUE)
        await channel.declare_queue(QUEUE, durable=True)
        for start in range(0, n, 1000):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(
                            body(i),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            content_type="application/json",
                        ),
                        routing_key=QUEUE,
                    )
                    for i in range(start, min(n, start + 1000))
                )
            )


async def consume_cordio(n: int) -> None:
    from cordio import App
    from cordio.config import EnvSource

    environ = {
        "B__BROKER__URL": URL,
        "B__BROKER__PREFETCH": "100",
        "B__LOG__LEVEL": "WARNING",
        "B__ADMIN__ENABLED": "false",
    }
    app = App("b", config=[EnvSource("b", environ=environ)])
    meter = Meter(n)

    @app.consume(QUEUE, max_concurrency=100)
    async def handle(event: Event) -> None:
        meter.tick()

    async with app.running(serve=False):
        await meter.done.wait()
    meter.report()


async def consume_aio_pika(n: int) -> None:
    import aio_pika

    meter = Meter(n)
    connection = await aio_pika.connect_robust(URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(QUEUE, durable=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            Event.model_validate_json(message.body)
            await message.ack()
            meter.tick()

        await queue.consume(on_message)
        await meter.done.wait()
    meter.report()


async def consume_faststream(n: int) -> None:
    from faststream.rabbit import RabbitBroker, RabbitQueue

    meter = Meter(n)
    broker = RabbitBroker(URL, logger=None)

    @broker.subscriber(RabbitQueue(QUEUE, durable=True))
    async def handle(event: Event) -> None:
        meter.tick()

    async with broker:
        await broker.start()
        await meter.done.wait()
    meter.report()


CONSUMERS = {
    "cordio": consume_cordio,
    "aio-pika": consume_aio_pika,
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
        "{messages} messages x {rounds} rounds, prefetch 100, medians",
        after=lambda: asyncio.run(fill(0)),
    )
