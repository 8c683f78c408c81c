"""CURVE (RFC 26) and ZAP (RFC 27): certificate files, key loading errors, the authorized
keys directory, and what libzmq does without a ZAP handler."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio
import zmq.auth

import cordio.zmq
import zmq
from cordio.zmq.curve import (
    AuthorizedKeys,
    CurveClientConfig,
    CurveKeyError,
    CurveServerConfig,
    configure_client,
    configure_server,
    create_certs,
)


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


# -- libzmq without a ZAP handler ----------------------------------------------------------


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


# -- the package ---------------------------------------------------------------------------


def test_cordio_zmq_exports_are_honest() -> None:
    assert sorted(cordio.zmq.__all__) == sorted(cordio.zmq._WHERE)
    for name in cordio.zmq.__all__:
        value = getattr(cordio.zmq, name)
        assert value.__name__ == name
        assert value.__module__ == "cordio.zmq.curve"
        doc = value.__dict__.get("__doc__") if isinstance(value, type) else value.__doc__
        assert doc, f"cordio.zmq.{name} has no docstring"
        assert len(doc.strip()) >= 20


def test_cordio_zmq_imports_no_pyzmq_and_names_the_extra() -> None:
    script = """
import sys
sys.modules["zmq"] = None  # as if pyzmq were not installed
import cordio.zmq
assert "create_certs" in dir(cordio.zmq)
from cordio.errors import MissingExtraError
try:
    from cordio.zmq import create_certs
except MissingExtraError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    assert "pip install 'cordio[zmq]'" in done.stdout
