"""``cordio zmq ...``: the MDP broker on its own; added to ``cordio`` by the ZeroMQ
transport (:meth:`ZmqTransport.commands`)."""

from __future__ import annotations

import asyncio
import signal

import click


@click.group()
def zmq() -> None:
    """ZeroMQ: run a Majordomo broker, make CURVE certificates."""


@zmq.command()
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False))
@click.option("--server", is_flag=True, help="Make the broker's key pair (server.key...).")
@click.option("--client", "clients", multiple=True, help="Make a key pair NAME (repeatable).")
@click.option("--force", is_flag=True, help="Replace certificate files that exist.")
def certs(directory: str, server: bool, clients: tuple[str, ...], force: bool) -> None:
    """Make CURVE certificates (pyzmq's format): NAME.key (public, 0644) and
    NAME.key_secret (0600) in DIR (0700). Copy a worker's or client's NAME.key into the
    broker's zmq.curve.authorized_keys_dir, and server.key to the peers."""
    from cordio.zmq.curve import create_certs

    if not server and not clients:
        raise click.UsageError("say what to make: --server, --client NAME, or both")
    try:
        made = create_certs(directory, server=server, clients=clients, force=force)
    except (FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in made:
        click.echo(str(path))


@zmq.command()
@click.option(
    "--bind",
    "binds",
    multiple=True,
    default=("tcp://127.0.0.1:5555",),
    show_default=True,
    help="Endpoint to bind (repeatable); tcp://HOST without a port takes a free one of"
    " --port-range.",
)
@click.option("--port-range", nargs=2, type=int, default=(6001, 6050), show_default=True)
@click.option("--heartbeat-interval", type=float, default=2.5, show_default=True)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False),
    default="",
    help="Write the bound endpoints here.",
)
@click.option(
    "--curve-secret",
    type=click.Path(dir_okay=False),
    default="",
    help="The broker's server.key_secret (cordio zmq certs --server): CURVE on; needs"
    " --authorized-keys.",
)
@click.option(
    "--authorized-keys",
    type=click.Path(file_okay=False),
    default="",
    help="Directory of the public .key files of the workers and clients admitted.",
)
@click.option("--allow", multiple=True, help="Admit only this client IP (repeatable).")
@click.option("--deny", multiple=True, help="Refuse this client IP (repeatable).")
def broker(
    binds: tuple[str, ...],
    port_range: tuple[int, int],
    heartbeat_interval: float,
    state_file: str,
    curve_secret: str,
    authorized_keys: str,
    allow: tuple[str, ...],
    deny: tuple[str, ...],
) -> None:
    """Run an MDP broker (MDP/0.1 and 0.2, RFC 7 and 18, with MMI) until SIGTERM/SIGINT;
    with --curve-secret and --authorized-keys, only CURVE peers whose key is authorized
    (RFC 26, ZAP RFC 27)."""
    from pydantic import ValidationError

    from cordio.zmq.broker import BrokerService
    from cordio.zmq.curve import CurveKeyError
    from cordio.zmq.settings import BrokerConfig, CurveConfig, ZmqSettings

    try:
        settings = ZmqSettings(
            heartbeat_interval=heartbeat_interval,
            broker=BrokerConfig(
                enabled=True, bind=list(binds), port_range=port_range, state_file=state_file
            ),
            curve=CurveConfig(
                server_secret_file=curve_secret,
                authorized_keys_dir=authorized_keys,
                allow=list(allow),
                deny=list(deny),
            ),
        )
        settings.curve.server()  # the key files are read now, named when wrong
    except (ValidationError, CurveKeyError) as exc:
        raise click.UsageError(str(exc)) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):  # before the endpoints are announced
            loop.add_signal_handler(signum, stop.set)
        service = BrokerService(settings)
        try:
            await service.start()
        except OSError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"MDP broker serving on {', '.join(service.endpoints)}", err=True)
        await stop.wait()
        await service.stop()

    asyncio.run(main())


@zmq.group()
def workers() -> None:
    """List or scale the worker processes an app supervises (zmq.workers), through its
    broker (the cordio.workers service)."""


_BROKER = click.option(
    "--broker", default="tcp://127.0.0.1:5555", show_default=True, help="The broker endpoint."
)
_TIMEOUT = click.option("--timeout", type=float, default=5.0, show_default=True)


@workers.command("list")
@_BROKER
@_TIMEOUT
def list_workers(broker: str, timeout: float) -> None:
    """List the worker processes: index, pid, alive, restarts, uptime."""
    _show(asyncio.run(_control(broker, timeout, "list")))


@workers.command()
@click.argument("count", type=click.IntRange(min=0))
@_BROKER
@_TIMEOUT
def scale(count: int, broker: str, timeout: float) -> None:
    """Run COUNT worker processes (start or stop the difference)."""
    _show(asyncio.run(_control(broker, timeout, "scale", count)))


async def _control(broker: str, timeout: float, method: str, *args: object) -> object:
    from cordio.zmq.client import ZmqClient
    from cordio.zmq.mdp import MDPClient, MDPError
    from cordio.zmq.supervisor import CONTROL_SERVICE

    client = ZmqClient(MDPClient(broker))
    try:
        return await client.request(
            CONTROL_SERVICE, {"method": method, "args": list(args)}, timeout=timeout
        )
    except MDPError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()


def _show(rows: object) -> None:
    if not isinstance(rows, list):
        raise click.ClickException(f"unexpected answer: {rows!r}")
    click.echo(f"{len(rows)} worker process(es)")
    for row in rows:
        click.echo(
            f"{row['index']:>4}  pid {row['pid']}  {'alive' if row['alive'] else 'down'}"
            f"  restarts {row['restarts']}  up {row['uptime']:.0f} s"
        )
