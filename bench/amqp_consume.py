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

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from pydantic import BaseModel

URL = "amqp://guest:guest@127.0.0.1:5672/"
QUEUE = "cordio.bench.consume"
CONTENDERS = ["cordio", "aio-pika", "faststream"]


class Event(BaseModel):
    id: int
    kind: str
    note: str


def body(i: int) -> bytes:
    text = json.dumps({"id": i, "kind": "order.created", "note": ""})
    return json.dumps({"id": i, "kind": "order.created", "note": "x" * (200 - len(text))}).encode()


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


class Meter:
    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.first = 0.0
        self.first_cpu = 0.0
        self.done = asyncio.Event()

    def tick(self) -> None:
        if self.count == 0:
            self.first, self.first_cpu = time.perf_counter(), time.process_time()
        self.count += 1
        if self.count >= self.n:
            self.done.set()

    def report(self) -> None:
        wall = time.perf_counter() - self.first
        cpu = time.process_time() - self.first_cpu
        print(json.dumps({"rate": (self.n - 1) / wall, "cpu_us": cpu / self.n * 1e6}))


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
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, __file__, "--consume", name, "--messages", str(n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--consume", choices=CONTENDERS)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.consume:
        asyncio.run(CONSUMERS[args.consume](args.messages))
        return
    os.sched_setaffinity(0, {0})
    rates: dict[str, list[float]] = {n: [] for n in CONTENDERS}
    cpu: dict[str, list[float]] = {n: [] for n in CONTENDERS}
    for round_no in range(args.rounds):
        order = CONTENDERS if round_no % 2 == 0 else list(reversed(CONTENDERS))
        for name in order:
            result = run(name, args.messages)
            rates[name].append(result["rate"])
            cpu[name].append(result["cpu_us"])
        print(
            f"round {round_no + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}" for n in CONTENDERS),
            flush=True,
        )
    asyncio.run(fill(0))
    print(f"\n{args.messages} messages x {args.rounds} rounds, prefetch 100, medians")
    print(f"{'contender':<11} {'msg/s':>8} {'CPU us/msg':>11}")
    median = {n: statistics.median(v) for n, v in rates.items()}
    for name in CONTENDERS:
        print(f"{name:<11} {median[name]:>8.0f} {statistics.median(cpu[name]):>11.1f}")
    print()
    print(f"ratio: cordio/aio-pika {median['cordio'] / median['aio-pika']:.2f}")
    print(f"ratio: cordio/faststream {median['cordio'] / median['faststream']:.2f}")


if __name__ == "__main__":
    main()
