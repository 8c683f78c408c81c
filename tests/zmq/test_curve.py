"""CURVE (RFC 26) and ZAP (RFC 27) for the MDP broker, worker and client, on real tcp
sockets: certificate files, key loading errors, round trips, refused keys and addresses,
keys added and removed at run time, and handshake failures reported instead of hanging."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio
import zmq.auth

import cordio.zmq.mdp.broker as broker_module
import zmq
from cordio.zmq.curve import (
    CurveClientConfig,
    CurveKeyError,
    CurveServerConfig,
    configure_client,
    configure_server,
    create_certs,
)
from cordio.zmq.mdp import AuthenticationError, ClientOptions, MDPClient, MDPError, RequestTimeout
from cordio.zmq.mdp.broker import BrokerOptions, MDPBroker
from cordio.zmq.zap import AuthorizedKeys
from tests.eventually import eventually
from tests.zmq.conftest import FAST, StartBroker, StartWorker, echo, endpoint_for

#: Client options for tests: a refusal must come well within this timeout.
QUICK = ClientOptions(timeout=3.0, retries=1)
#: Worker reconnects for tests: refused connections follow each other quickly.
RETRY_FAST = {"reconnect_initial": 0.05, "reconnect_max": 0.2}


class Keys:
    """A server key pair and client key pairs, with an authorized keys directory holding
    the public keys of ``worker`` and ``client`` (not ``stranger``)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "certs"
        create_certs(self.dir, server=True, clients=["worker", "client", "stranger"])
        self.authorized = root / "authorized"
        self.authorized.mkdir()
        for name in ("worker", "client"):
            shutil.copy(self.dir / f"{name}.key", self.authorized)

    def server(self, **options: Any) -> CurveServerConfig:
        return CurveServerConfig(self.dir / "server.key_secret", self.authorized, **options)

    def client(self, name: str, server_key: str = "server.key") -> CurveClientConfig:
        return CurveClientConfig(self.dir / f"{name}.key_secret", self.dir / server_key)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


async def ask(endpoint: str, curve: CurveClientConfig | None, body: bytes = b"hi") -> list[bytes]:
    async with MDPClient(endpoint, QUICK, curve=curve) as client:
        return await client.request("echo", body)


async def refused(endpoint: str, curve: CurveClientConfig | None) -> AuthenticationError:
    """The :class:`AuthenticationError` a request gets, asserting it came in time."""
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        await ask(endpoint, curve)
    assert time.monotonic() - started < QUICK.timeout  # within the first attempt's timeout
    return caught.value


# -- certificates ------------------------------------------------------------------------


def test_create_certs_writes_pairs_with_private_modes(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    written = create_certs(folder, server=True, clients=["alice", "bob"])
    names = [p.name for p in written]
    assert names == [
        "server.key",
        "server.key_secret",
        "alice.key",
        "alice.key_secret",
        "bob.key",
        "bob.key_secret",
    ]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.name.endswith(".key_secret") else 0o644), path
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)  # no scratch left
    public, secret = zmq.auth.load_certificate(folder / "alice.key_secret")
    assert secret is not None
    assert zmq.auth.load_certificate(folder / "alice.key") == (public, None)
    assert zmq.curve_public(secret) == public


def test_create_certs_tightens_an_existing_directory(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    create_certs(folder, clients=["w1"])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_create_certs_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    create_certs(tmp_path, clients=["alice"])
    before = (tmp_path / "alice.key").read_bytes()
    with pytest.raises(FileExistsError, match=r"alice\.key.*force") as caught:
        create_certs(tmp_path, server=True, clients=["alice"])
    assert caught.value.filename == str(tmp_path / "alice.key")
    assert not (tmp_path / "server.key").exists()  # nothing written when one file exists
    assert (tmp_path / "alice.key").read_bytes() == before
    create_certs(tmp_path, server=True, clients=["alice"], force=True)
    assert (tmp_path / "alice.key").read_bytes() != before  # a new key pair
    assert (tmp_path / "server.key_secret").exists()


@pytest.mark.parametrize(
    ("server", "clients", "message"),
    [
        (False, [], "nothing to create"),
        (False, ["../evil"], "not a certificate name"),
        (False, [".hidden"], "not a certificate name"),
        (False, [""], "not a certificate name"),
        (False, ["a", "a"], "given twice: a"),
        (True, ["server"], "given twice: server"),
    ],
)
def test_create_certs_refuses_bad_names(
    tmp_path: Path, server: bool, clients: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_certs(tmp_path / "k", server=server, clients=clients)
    assert not (tmp_path / "k").exists()


# -- loading keys ------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.key_secret", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "junk.key_secret", "hello\n"), "not a certificate file"),
        (
            lambda d: _write(d / "short.key_secret", 'curve\n    public-key = "abc"\n'),
            "public-key is not a CURVE key",
        ),
        (lambda d: d / "client.key", "has no secret-key"),
    ],
)
def test_a_bad_secret_file_is_an_error_naming_it(keys: Keys, make: Any, reason: str) -> None:
    path = make(keys.dir)
    with pytest.raises(CurveKeyError, match=reason) as caught:
        CurveClientConfig(path, keys.dir / "server.key")
    assert caught.value.path == path
    assert str(path) in str(caught.value)
    with pytest.raises(CurveKeyError, match=reason):
        CurveServerConfig(path, keys.authorized)


def test_a_secret_key_of_another_pair_is_an_error(keys: Keys) -> None:
    public = (keys.dir / "client.key").read_text().split('public-key = "')[1][:40]
    secret = (keys.dir / "stranger.key_secret").read_text().split('secret-key = "')[1][:40]
    mixed = _write(
        keys.dir / "mixed.key_secret",
        f'curve\n    public-key = "{public}"\n    secret-key = "{secret}"\n',
    )
    with pytest.raises(CurveKeyError, match="not the public key of its secret-key"):
        CurveClientConfig(mixed, keys.dir / "server.key")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_an_error_naming_it(keys: Keys) -> None:
    path = keys.dir / "client.key_secret"
    path.chmod(0)
    with pytest.raises(CurveKeyError, match=r"client\.key_secret.*cannot be read"):
        CurveClientConfig(path, keys.dir / "server.key")


def test_a_file_the_process_may_not_read_is_an_error_naming_it(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same as above where the tests run as root: the open fails with EACCES."""
    path = keys.dir / "client.key_secret"
    real_open = Path.open

    def deny(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(CurveKeyError, match=r"client\.key_secret.*cannot be read \(Permission"):
        CurveClientConfig(path, keys.dir / "server.key")


def test_a_missing_broker_key_or_directory_is_an_error_naming_it(keys: Keys) -> None:
    with pytest.raises(CurveKeyError, match=r"nope\.key.*no such file"):
        CurveClientConfig(keys.dir / "client.key_secret", keys.dir / "nope.key")
    with pytest.raises(CurveKeyError, match=r"absent.*authorized keys directory does not exist"):
        CurveServerConfig(keys.dir / "server.key_secret", keys.dir / "absent")


def test_a_secret_file_readable_by_others_is_warned_about(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    path = keys.dir / "client.key_secret"
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="cordio.zmq.curve"):
        CurveClientConfig(path, keys.dir / "server.key")
    assert f"{path} is readable by others" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allow": ["10.0.0.0/8"]}, "not an IP address"),
        ({"deny": ["localhost"]}, "not an IP address"),
        ({"allow": ["127.0.0.1"], "deny": ["10.0.0.1"]}, "not both"),
        ({"reload_interval": -1}, "reload_interval"),
        ({"handshake_interval": 0}, "handshake_interval"),
    ],
)
def test_server_config_refuses_bad_values(
    keys: Keys, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        keys.server(**options)


def test_configs_hide_their_keys_and_know_the_public_ones(keys: Keys) -> None:
    server, client = keys.server(), keys.client("client")
    assert client.server_key == server.public_key
    assert client.public_key == zmq.auth.load_certificate(keys.dir / "client.key")[0]
    for config in (server, client):
        assert "secret=" not in repr(config)
        assert server.public_key.decode() not in repr(config)


def test_authorized_keys_follow_the_directory(keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    known = AuthorizedKeys(keys.authorized, reload_interval=0)
    client = keys.client("client").public_key
    stranger = keys.client("stranger").public_key
    assert known.keys == {client, keys.client("worker").public_key}
    assert not known.callback("*", stranger)
    shutil.copy(keys.dir / "stranger.key", keys.authorized)
    assert known.callback("*", stranger)
    (keys.authorized / "client.key").unlink()
    assert not known.callback("*", client)
    # a file rewritten in place (same name, inode and size) is read again too; its time is
    # set apart by hand, for file systems that keep coarse modification times
    rewritten = keys.authorized / "stranger.key"
    before = rewritten.stat().st_mtime_ns
    rewritten.write_bytes((keys.dir / "client.key").read_bytes())
    os.utime(rewritten, ns=(before + 10**9, before + 10**9))
    assert known.callback("*", client)
    assert not known.callback("*", stranger)
    # a malformed file is skipped, naming it; the other keys stay
    with caplog.at_level(logging.WARNING, logger="cordio.zmq.curve"):
        (keys.authorized / "broken.key").write_text("not a key\n")
        assert known.callback("*", client)
    assert "broken.key" in caplog.text
    assert known.reloads == 4


def test_authorized_keys_are_looked_at_most_every_reload_interval(keys: Keys) -> None:
    known = AuthorizedKeys(keys.authorized, reload_interval=3600)
    shutil.copy(keys.dir / "stranger.key", keys.authorized)
    assert not known.callback("*", keys.client("stranger").public_key)  # not looked yet
    assert known.reload()
    assert known.callback("*", keys.client("stranger").public_key)


# -- the broker, the worker and the client -----------------------------------------------


async def test_authorized_worker_and_client_round_trip(
    keys: Keys, tcp_endpoint: str, start_broker: StartBroker, start_worker: StartWorker
) -> None:
    broker = await start_broker(tcp_endpoint, curve=keys.server())
    worker = await start_worker(tcp_endpoint, "echo", echo, curve=keys.client("worker"))
    async with MDPClient(tcp_endpoint, QUICK, curve=keys.client("client")) as client:
        replies = await asyncio.gather(
            *(client.request("echo", b"ping %d" % n, b"two") for n in range(5))
        )
    assert replies == [[b"ping %d" % n, b"two"] for n in range(5)]
    assert worker.served == 5
    assert worker.auth_failures == 0
    assert broker.authenticator is not None
    assert broker.authenticator.accepted >= 2  # the worker and each client socket
    assert not broker.authenticator.refused


def test_without_a_zap_handler_libzmq_lets_any_key_in(keys: Keys) -> None:
    """The pitfall the broker avoids: a CURVE server whose context has no ZAP handler
    admits a client whose key is nowhere authorized."""
    context = zmq.Context()
    try:
        server = context.socket(zmq.ROUTER)
        configure_server(server, keys.server())
        port = server.bind_to_random_port("tcp://127.0.0.1")
        stranger = context.socket(zmq.DEALER)
        configure_client(stranger, keys.client("stranger"))
        stranger.connect(f"tcp://127.0.0.1:{port}")
        stranger.send(b"let me in")
        assert server.poll(5000), "libzmq refused the key without a ZAP handler"
        assert server.recv_multipart()[1] == b"let me in"
    finally:
        context.destroy(linger=0)


async def test_an_unknown_client_key_is_refused(
    keys: Keys, tcp_endpoint: str, start_broker: StartBroker, start_worker: StartWorker
) -> None:
    broker = await start_broker(tcp_endpoint, curve=keys.server())
    await start_worker(tcp_endpoint, "echo", echo, curve=keys.client("worker"))
    assert await ask(tcp_endpoint, keys.client("client")) == [b"hi"]
    error = await refused(tcp_endpoint, keys.client("stranger"))
    assert isinstance(error, MDPError)
    assert error.broker == tcp_endpoint
    assert error.event == "HANDSHAKE_FAILED_AUTH"
    assert "ZAP status 400" in str(error)
    assert tcp_endpoint in str(error)
    assert broker.authenticator is not None
    assert broker.authenticator.refused == {"key": 1}


async def test_a_plain_client_is_refused_by_a_curve_broker(
    keys: Keys, tcp_endpoint: str, start_broker: StartBroker, start_worker: StartWorker
) -> None:
    await start_broker(tcp_endpoint, curve=keys.server())
    await start_worker(tcp_endpoint, "echo", echo, curve=keys.client("worker"))
    async with MDPClient(tcp_endpoint, ClientOptions(timeout=0.3, retries=0)) as client:
        with pytest.raises(RequestTimeout):  # no key, no monitor: nothing gets through
            await client.request("echo", b"hi")


async def test_the_authenticator_runs_before_the_socket_binds(
    keys: Keys, tcp_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    bind = broker_module.bind

    async def watched(sock: zmq.asyncio.Socket, endpoint: str) -> None:
        assert sock.getsockopt(zmq.CURVE_SERVER) == 1  # options set before the bind
        seen.append(broker.authenticator is not None and broker.authenticator.running)
        await bind(sock, endpoint)

    monkeypatch.setattr(broker_module, "bind", watched)
    broker = MDPBroker(tcp_endpoint, BrokerOptions(**FAST), curve=keys.server())
    await broker.start()
    try:
        assert seen == [True]
    finally:
        await broker.stop()
    assert broker.authenticator is None


async def test_a_failed_bind_leaves_no_handler_nor_context(keys: Keys) -> None:
    broker = MDPBroker("tcp://256.0.0.1:5555", BrokerOptions(**FAST), curve=keys.server())
    with pytest.raises(OSError, match="cannot bind"):
        await broker.start()
    assert broker.authenticator is None
    assert broker._own_context is None


async def test_a_key_added_at_run_time_is_accepted_and_a_removed_one_refused(
    keys: Keys, tcp_endpoint: str, start_broker: StartBroker, start_worker: StartWorker
) -> None:
    broker = await start_broker(tcp_endpoint, curve=keys.server(reload_interval=0.1))
    await start_worker(tcp_endpoint, "echo", echo, curve=keys.client("worker"))
    await refused(tcp_endpoint, keys.client("stranger"))

    shutil.copy(keys.dir / "stranger.key", keys.authorized / "new-peer.key")

    async def stranger_gets_in() -> bool:
        try:
            return await ask(tcp_endpoint, keys.client("stranger")) == [b"hi"]
        except AuthenticationError:
            return False

    await eventually(stranger_gets_in, timeout=5, what="the added key to be accepted")

    (keys.authorized / "client.key").unlink()

    async def client_refused() -> bool:
        try:
            await ask(tcp_endpoint, keys.client("client"))
        except AuthenticationError:
            return True
        return False

    await eventually(client_refused, timeout=5, what="the removed key to be refused")
    assert broker.authenticator is not None
    assert broker.authenticator.authorized.reloads == 2
    # the worker, connected all along, still serves the key that stayed
    assert await ask(tcp_endpoint, keys.client("stranger")) == [b"hi"]


@pytest.mark.parametrize(
    ("lists", "admitted"),
    [
        ({"deny": ["127.0.0.1"]}, False),
        ({"deny": ["10.1.2.3"]}, True),
        ({"allow": ["127.0.0.1"]}, True),
        ({"allow": ["10.1.2.3"]}, False),
    ],
)
async def test_addresses_are_allowed_or_denied(
    keys: Keys,
    tcp_endpoint: str,
    start_broker: StartBroker,
    start_worker: StartWorker,
    lists: dict[str, list[str]],
    admitted: bool,
) -> None:
    broker = await start_broker(tcp_endpoint, curve=keys.server(**lists))
    worker = await start_worker(tcp_endpoint, "echo", echo, curve=keys.client("worker"))
    if admitted:
        assert await ask(tcp_endpoint, keys.client("client")) == [b"hi"]
        return
    error = await refused(tcp_endpoint, keys.client("client"))  # an authorized key
    assert error.event == "HANDSHAKE_FAILED_AUTH"
    # the worker, from the same address, is refused too
    await eventually(lambda: worker.auth_failures, what="the worker to be refused")
    assert not broker.workers()
    assert broker.authenticator is not None
    assert broker.authenticator.refused["address"] >= 2
    assert not broker.authenticator.refused["key"]


async def test_a_wrong_broker_public_key_is_an_authentication_error_not_a_hang(
    keys: Keys, tcp_endpoint: str, start_broker: StartBroker
) -> None:
    await start_broker(tcp_endpoint, curve=keys.server())
    wrong = keys.client("client", server_key="stranger.key")  # not the broker's key
    error = await refused(tcp_endpoint, wrong)
    assert error.event in {"HANDSHAKE_FAILED_NO_DETAIL", "HANDSHAKE_FAILED_PROTOCOL"}
    assert "broker public key" in error.cause


async def test_a_curve_client_of_a_plain_broker_is_an_authentication_error(
    keys: Keys, tcp_endpoint: str, start_broker: StartBroker
) -> None:
    await start_broker(tcp_endpoint)
    error = await refused(tcp_endpoint, keys.client("client"))
    assert error.event.startswith("HANDSHAKE_FAILED_")


async def test_a_worker_with_a_bad_key_logs_once_retries_and_gets_in_once_authorized(
    keys: Keys,
    tcp_endpoint: str,
    start_broker: StartBroker,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = await start_broker(tcp_endpoint, curve=keys.server(reload_interval=0))
    caplog.set_level(logging.DEBUG, logger="cordio.zmq.mdp.worker")
    worker = await start_worker(
        tcp_endpoint,
        "echo",
        echo,
        curve=keys.client("stranger"),
        **RETRY_FAST,
    )
    await eventually(lambda: worker.auth_failures >= 4, what="refused connections")
    warnings = [
        r for r in caplog.records if r.name == "cordio.zmq.mdp.worker" and r.levelname == "WARNING"
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "CURVE handshake with" in warnings[0].getMessage()
    assert "ZAP status 400" in warnings[0].getMessage()
    assert all(not link.done() for link in worker._links)  # still trying, not crashed
    assert not broker.workers()

    shutil.copy(keys.dir / "stranger.key", keys.authorized)
    await eventually(lambda: broker.workers(), what="the worker to register")
    assert await ask(tcp_endpoint, keys.client("client")) == [b"hi"]
    assert "accepts this worker again after" in caplog.text


async def test_a_worker_with_a_wrong_broker_key_keeps_retrying(
    keys: Keys,
    tcp_endpoint: str,
    start_broker: StartBroker,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_broker(tcp_endpoint, curve=keys.server())
    caplog.set_level(logging.WARNING, logger="cordio.zmq.mdp.worker")
    worker = await start_worker(
        tcp_endpoint,
        "echo",
        echo,
        curve=keys.client("worker", server_key="stranger.key"),
        **RETRY_FAST,
    )
    await eventually(lambda: worker.auth_failures >= 2, what="refused connections")
    assert caplog.text.count("CURVE handshake with") == 1
    assert "broker public key" in caplog.text
    await worker.stop()  # stops cleanly while refused


# -- contexts ------------------------------------------------------------------------------


async def test_curve_brokers_get_contexts_of_their_own_and_restart_cleanly(
    keys: Keys, start_worker: StartWorker, tcp_endpoint: str
) -> None:
    second_endpoint = endpoint_for("tcp", "")
    first = MDPBroker(tcp_endpoint, BrokerOptions(**FAST), curve=keys.server())
    second = MDPBroker(second_endpoint, BrokerOptions(**FAST), curve=keys.server())
    await first.start()
    await second.start()
    try:
        assert first.context is not second.context
        assert first.context is not zmq.asyncio.Context.instance()
        await start_worker(second_endpoint, "echo", echo, curve=keys.client("worker"))
        assert await ask(second_endpoint, keys.client("client")) == [b"hi"]
    finally:
        await first.stop()
        await second.stop()
    for _ in range(2):  # the handler's socket and poller leave nothing behind
        await second.start()
        try:
            assert await ask(second_endpoint, keys.client("client")) == [b"hi"]
            await refused(second_endpoint, keys.client("stranger"))
        finally:
            await second.stop()


async def test_a_context_with_a_zap_handler_is_not_shared(keys: Keys, tcp_endpoint: str) -> None:
    context = zmq.asyncio.Context()
    first = MDPBroker(tcp_endpoint, BrokerOptions(**FAST), context=context, curve=keys.server())
    second = MDPBroker(
        endpoint_for("tcp", ""), BrokerOptions(**FAST), context=context, curve=keys.server()
    )
    await first.start()
    try:
        with pytest.raises(RuntimeError, match="another ZAP handler"):
            await second.start()
        assert second.authenticator is None
        assert first.context is context
    finally:
        await first.stop()
        context.term()
