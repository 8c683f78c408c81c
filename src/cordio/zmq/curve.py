"""CURVE security for the MDP broker, worker and client: CurveZMQ (ZeroMQ RFC 26) with
ZAP (RFC 27) on the broker's side.

**Roles** (RFC 26, "Overall Operation"): the broker is the CURVE *server*: it holds a
long-term key pair and checks each client's long-term public key against a directory of
authorized keys. Workers and clients are CURVE *clients*: each holds its own key pair and
must know the broker's public key before it connects. Every connection gets fresh
short-term keys (perfect forward secrecy); the client's long-term public key travels only
inside the encrypted INITIATE "vouch", never in clear.

**Key files** are pyzmq's certificate files (``zmq.auth.create_certificates``): ``NAME.key``
holds the public key, ``NAME.key_secret`` the public and the secret key, both as 40
characters of Z85 (RFC 32). :func:`create_certs` writes them (secret files ``0600``, the
directory ``0700``); :class:`CurveServerConfig` and :class:`CurveClientConfig` read them
when they are made, so a missing, unreadable or malformed file is a :class:`CurveKeyError`
naming it at start-up, not a failure at the first connection.

**The ZAP handler** (:class:`ZapAuthenticator`). libzmq asks the handler bound at
``inproc://zeromq.zap.01`` *on the server socket's own context* about each client that
completes the CURVE handshake (RFC 27: "The handler SHALL start before any server starts").
When no handler is bound there, libzmq 4.x accepts **every** client key (the "Stonehouse"
legacy behaviour; only the draft option ``ZMQ_ZAP_ENFORCE_DOMAIN`` changes that, and release
builds lack it). So :class:`~cordio.zmq.mdp.broker.MDPBroker` starts its authenticator
before its socket binds, on a context of its own unless it is given one, and a context that
already has a handler is refused rather than shared.

**Reloading keys.** The authorized directory is read again when it changes: on a
handshake, when the last look is more than ``reload_interval`` seconds old (default 1), the
authenticator lists ``*.key`` with each file's inode, size and modification time and
reloads when that listing differs. Adding a public key file lets that client in, and
removing (or renaming away) one refuses it, at the latest ``reload_interval`` seconds later
and without a restart; no task polls the directory in between (keys only matter at a
handshake). Removing a key refuses *new* connections: one already authenticated stays up
until it closes (libzmq cannot drop a single peer of a ROUTER). A malformed file in the
directory is skipped with a warning naming it; the other keys stay valid.

**Addresses.** ``allow`` admits only the listed client IP addresses, ``deny`` refuses the
listed ones (pyzmq's ``Authenticator.allow`` / ``deny``: exact addresses, one list or the
other). A refused address never reaches the key check.

**Failed handshakes on the client side** (:class:`HandshakeMonitor`). libzmq retries a
failing handshake forever and the application sees nothing: a request simply never gets an
answer. cordio watches each CURVE socket with a socket monitor for
``ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`` (the broker's ZAP handler said no: RFC 26 calls the
server's ERROR a hard error), ``..._PROTOCOL`` (say, a broker that does not speak CURVE)
and ``..._NO_DETAIL`` (the broker closed the connection mid-handshake, which is what a
wrong broker public key looks like: the broker cannot open the HELLO box and hangs up).
After the first two libzmq gives the connection up for good, so they refuse it at once;
the third makes libzmq reconnect (every 100 ms), so it refuses after
``handshake_failures`` in a row (default 3), well within a request's timeout. The client
raises
:class:`~cordio.zmq.mdp.errors.AuthenticationError`; the worker logs it once per streak of
refusals and reconnects with its backoff.

``inproc://`` connections run no security mechanism in libzmq: a CURVE broker's
``inproc://`` endpoint is reachable, unauthenticated, by any socket of its context.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import itertools
import logging
import os
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cordio.errors import CordioError, require_extra
from cordio.zmq.mdp._options import counts, seconds

require_extra("zmq", feature="ZeroMQ CURVE security", extra="zmq")

import zmq.asyncio  # noqa: E402
import zmq.auth  # noqa: E402
from zmq.utils import z85  # noqa: E402
from zmq.utils.monitor import parse_monitor_message  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger("cordio.zmq.curve")

#: Where libzmq looks for the ZAP handler on a context (RFC 27, "Architecture").
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
#: The suffix of public key files, the only files read from the authorized directory.
PUBLIC_SUFFIX = ".key"
#: The suffix of secret key files (pyzmq's naming).
SECRET_SUFFIX = ".key_secret"


class CurveKeyError(CordioError, ValueError):
    """A key file or the authorized keys directory cannot be used.

    Args:
        path: the file or directory.
        reason: what is wrong with it (missing, unreadable, no secret key, a key that is
            not 40 characters of Z85...).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"CURVE keys: {self.path}: {reason}")


# -- certificates --------------------------------------------------------------------------


def create_certs(
    dir: str | os.PathLike[str],
    *,
    server: bool = False,
    clients: Sequence[str] = (),
    force: bool = False,
) -> list[Path]:
    """Write CURVE key pairs as pyzmq certificate files (``zmq.auth.create_certificates``).

    For the broker (``server``) and each name in ``clients``, ``NAME.key`` (the public key,
    mode ``0644``: copy it into the broker's authorized directory, or to the peers that
    connect to the broker) and ``NAME.key_secret`` (both keys, mode ``0600``: it stays with
    its owner). ``dir`` is created if needed and set to mode ``0700``. Each pair is written
    in a private temporary directory inside ``dir`` and moved into place, so no secret file
    is ever readable by others, not even for a moment.

    Args:
        dir: the directory.
        server: write ``server.key`` and ``server.key_secret``.
        clients: names of client (or worker) key pairs: letters, digits, ``-``, ``_``,
            ``.``; not starting with a dot.
        force: replace files that exist; without it, nothing is written when any exists.

    Returns:
        The files written: public then secret file of the server, then of each client.

    Raises:
        ValueError: nothing to create, a bad or repeated name, or a client named
            ``server`` next to the server.
        FileExistsError: a file exists and ``force`` is false (naming the first one).
        OSError: the directory or a file cannot be written.
    """
    names = (["server"] if server else []) + list(clients)
    if not names:
        raise ValueError("nothing to create: ask for the server and/or client names")
    for name in clients:
        if not _is_cert_name(name):
            raise ValueError(
                f"{name!r} is not a certificate name (letters, digits, '-', '_', '.'; "
                "not starting with '.')"
            )
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise ValueError(f"certificate names given twice: {', '.join(repeated)}")
    folder = Path(dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # also when it existed: it holds secret keys
    targets = [folder / f"{name}{suffix}" for name in names for suffix in _SUFFIXES]
    if not force:
        for target in targets:
            if target.exists() or target.is_symlink():
                raise FileExistsError(
                    errno.EEXIST, f"{target} exists (use force to replace it)", str(target)
                )
    written: list[Path] = []
    scratch = Path(tempfile.mkdtemp(prefix=".cordio-certs-", dir=folder))  # mode 0700
    try:
        for name in names:
            public, secret = (Path(p) for p in zmq.auth.create_certificates(scratch, name))
            public.chmod(0o644)
            secret.chmod(0o600)
            for made in (public, secret):
                target = folder / made.name
                os.replace(made, target)
                written.append(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("CURVE certificates written to %s: %s", folder, ", ".join(p.name for p in written))
    return written


_SUFFIXES = (PUBLIC_SUFFIX, SECRET_SUFFIX)


def _is_cert_name(name: str) -> bool:
    return (
        bool(name)
        and not name.startswith(".")
        and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    )


def _read_keys(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    """``(public, secret)`` Z85 keys of a certificate file; ``secret`` is ``None`` when the
    file has none and none is asked for.

    Raises:
        CurveKeyError: missing, unreadable or malformed; no secret key when ``secret``; a
            secret key that does not belong to the public key.
    """
    try:
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise CurveKeyError(path, "no such file") from None
    except IsADirectoryError:
        raise CurveKeyError(path, "is a directory, not a key file") from None
    except OSError as exc:
        raise CurveKeyError(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        public, private = zmq.auth.load_certificate(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CurveKeyError(path, f"not a certificate file ({exc})") from None
    _check_z85(path, "public-key", public)
    if private is None:
        if secret:
            raise CurveKeyError(
                path, f"has no secret-key (the {SECRET_SUFFIX} file of the pair is needed)"
            )
        return public, None
    _check_z85(path, "secret-key", private)
    if zmq.curve_public(private) != public:
        raise CurveKeyError(path, "its public-key is not the public key of its secret-key")
    if secret:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "CURVE secret key file %s is readable by others (mode %o): chmod 600 it",
                path,
                stat.S_IMODE(mode),
            )
    return public, private


def _check_z85(path: Path, what: str, key: bytes) -> None:
    try:
        raw = z85.decode(key)
    except (ValueError, KeyError, IndexError, UnicodeError):
        raw = b""
    if len(raw) != 32:
        raise CurveKeyError(path, f"its {what} is not a CURVE key (40 characters of Z85)")


def _path(value: str | os.PathLike[str]) -> Path:
    return value if isinstance(value, Path) else Path(value)


def _addresses(owner: str, values: Iterable[str]) -> tuple[str, ...]:
    """IP addresses in the form libzmq puts in a ZAP request (RFC 27: "an IPv4 dotted
    string, or an IPv6 canonical string representation").

    Raises:
        ValueError: an entry that is not one IP address.
    """
    found = []
    for value in values:
        try:
            found.append(str(ipaddress.ip_address(value.strip())))
        except ValueError:
            raise ValueError(
                f"{owner}: {value!r} is not an IP address (exact addresses only, no networks)"
            ) from None
    return tuple(found)


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveServerConfig:
    """CURVE for the broker: its key pair, the clients it accepts.

    The files are read when the object is made; the authorized directory again whenever
    it changes (module docstring, "Reloading keys").

    Attributes:
        secret_file: the broker's ``.key_secret`` certificate (:func:`create_certs`).
        authorized_keys_dir: a directory of the ``.key`` public key files of every worker
            and client allowed in (other files are ignored).
        allow: client IP addresses admitted; when not empty, every other address is
            refused (default: none, every address may try its key).
        deny: client IP addresses refused (default none). Not together with ``allow``.
        reload_interval: seconds between two looks at the authorized directory, made on a
            handshake (default 1; 0: at every handshake).
        handshake_interval: seconds a client may take to complete its handshake
            (``ZMQ_HANDSHAKE_IVL``, default 10; libzmq's own is 30).

    Raises:
        CurveKeyError: the secret file is missing, unreadable or malformed, or the
            directory is missing or is not a directory.
        ValueError: an address that is not an IP address, both ``allow`` and ``deny``,
            or a duration out of range.
    """

    secret_file: Path
    authorized_keys_dir: Path
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    reload_interval: float = 1.0
    handshake_interval: float = 10.0
    _public: bytes = field(init=False, repr=False, compare=False, default=b"")
    _secret: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "authorized_keys_dir", _path(self.authorized_keys_dir))
        set_(self, "allow", _addresses("allow", self.allow))
        set_(self, "deny", _addresses("deny", self.deny))
        if self.allow and self.deny:
            raise ValueError("give allow or deny, not both (pyzmq's Authenticator takes one)")
        seconds(self, "reload_interval", zero=True)
        seconds(self, "handshake_interval")
        _load_pair(self)
        if not self.authorized_keys_dir.is_dir():
            what = "does not exist" if not self.authorized_keys_dir.exists() else "is a file"
            raise CurveKeyError(self.authorized_keys_dir, f"the authorized keys directory {what}")

    @property
    def public_key(self) -> bytes:
        """The broker's public key, Z85 (40 bytes): what clients and workers need."""
        return self._public


@dataclass(frozen=True)
class CurveClientConfig:
    """CURVE for a worker or a client: its own key pair and the broker's public key.

    Both files are read when the object is made.

    Attributes:
        secret_file: this peer's ``.key_secret`` certificate (:func:`create_certs`).
        server_public_file: the broker's ``.key`` public certificate (its ``.key_secret``
            works too; only its public key is read).
        handshake_failures: handshakes in a row that may end with the connection closed
            mid-handshake (``HANDSHAKE_FAILED_NO_DETAIL``: a wrong broker public key, or a
            broker going away) before the connection counts as refused (default 3). A
            refusal by the ZAP handler (``HANDSHAKE_FAILED_AUTH``) or a protocol error
            (``HANDSHAKE_FAILED_PROTOCOL``) counts at once: libzmq does not retry those.
        handshake_interval: seconds the handshake may take (``ZMQ_HANDSHAKE_IVL``, default
            10); a handshake that takes longer fails.

    Raises:
        CurveKeyError: a file is missing, unreadable or malformed, or the secret file has
            no secret key.
        ValueError: a value out of range.
    """

    secret_file: Path
    server_public_file: Path
    handshake_failures: int = 3
    handshake_interval: float = 10.0
    _public: bytes = field(init=False, repr=False, compare=False, default=b"")
    _secret: bytes = field(init=False, repr=False, compare=False, default=b"")
    _server: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        counts(self, "handshake_failures")
        seconds(self, "handshake_interval")
        _load_pair(self)
        server_file = _path(self.server_public_file)
        object.__setattr__(self, "server_public_file", server_file)
        object.__setattr__(self, "_server", _read_keys(server_file, secret=False)[0])

    @property
    def public_key(self) -> bytes:
        """This peer's public key, Z85 (40 bytes): what the broker's directory must hold."""
        return self._public

    @property
    def server_key(self) -> bytes:
        """The broker's public key, Z85 (40 bytes)."""
        return self._server


def _load_pair(config: CurveServerConfig | CurveClientConfig) -> None:
    """Read a config's ``secret_file`` (a :class:`Path` from then on) into its ``_public``
    and ``_secret`` keys.

    Raises:
        CurveKeyError: the file cannot be used (:func:`_read_keys`).
    """
    path = _path(config.secret_file)
    public, secret = _read_keys(path, secret=True)
    assert secret is not None
    object.__setattr__(config, "secret_file", path)
    object.__setattr__(config, "_public", public)
    object.__setattr__(config, "_secret", secret)


def configure_server(sock: zmq.Socket[Any], config: CurveServerConfig) -> None:
    """Make ``sock`` a CURVE server (``ZMQ_CURVE_SERVER``, its secret key, the handshake
    interval). Call it before ``bind``: the options apply to later binds only."""
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, config._secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, config._public)
    sock.setsockopt(zmq.HANDSHAKE_IVL, max(1, round(config.handshake_interval * 1000)))


def configure_client(sock: zmq.Socket[Any], config: CurveClientConfig) -> None:
    """Make ``sock`` a CURVE client of the broker (its key pair, ``ZMQ_CURVE_SERVERKEY``,
    the handshake interval). Call it before ``connect``."""
    sock.setsockopt(zmq.CURVE_SECRETKEY, config._secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, config._public)
    sock.setsockopt(zmq.CURVE_SERVERKEY, config._server)
    sock.setsockopt(zmq.HANDSHAKE_IVL, max(1, round(config.handshake_interval * 1000)))


# -- the broker's side: ZAP ----------------------------------------------------------------


class AuthorizedKeys:
    """The public keys of a directory's ``*.key`` files, read again when the directory
    changes (checked at most every ``reload_interval`` seconds, on :meth:`check`).

    The credentials provider of :class:`ZapAuthenticator` (pyzmq's
    ``configure_curve_callback``: :meth:`callback` answers for one key).

    Args:
        directory: the authorized keys directory.
        reload_interval: seconds between two looks at it (0: every time).

    Attributes:
        keys: the authorized public keys, Z85.
        reloads: how many times the keys were read again after a change.
    """

    def __init__(self, directory: str | os.PathLike[str], reload_interval: float = 1.0) -> None:
        self.directory = Path(directory)
        self.reload_interval = reload_interval
        self.keys: frozenset[bytes] = frozenset()
        self.reloads = 0
        self._listing: tuple[tuple[str, int, int, int], ...] | None = None
        self._looked = -float("inf")
        self.reload(force=True)

    def __len__(self) -> int:
        return len(self.keys)

    def _list(self) -> tuple[tuple[str, int, int, int], ...]:
        found = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if not entry.name.endswith(PUBLIC_SUFFIX) or entry.name.startswith("."):
                    continue
                try:
                    info = entry.stat()
                except OSError:
                    continue  # removed meanwhile
                if stat.S_ISREG(info.st_mode):
                    found.append((entry.name, info.st_ino, info.st_size, info.st_mtime_ns))
        return tuple(sorted(found))

    def reload(self, *, force: bool = False) -> bool:
        """Read the directory again if it changed (or with ``force``); whether the keys
        were read. An unreadable directory keeps the keys known (logged); a malformed file
        is skipped (logged, naming it)."""
        self._looked = time.monotonic()
        try:
            listing = self._list()
        except OSError as exc:
            log.error("CURVE: cannot list the authorized keys in %s: %s", self.directory, exc)
            return False
        if listing == self._listing and not force:
            return False
        keys = set()
        for name, *_ in listing:
            path = self.directory / name
            try:
                public, _secret = _read_keys(path, secret=False)
            except CurveKeyError as exc:
                log.warning("CURVE: authorized key skipped: %s", exc)
                continue
            keys.add(public)
        before, self.keys = self.keys, frozenset(keys)
        if self._listing is not None:
            self.reloads += 1
            log.info(
                "CURVE: authorized keys in %s reloaded: %d (%d added, %d removed)",
                self.directory,
                len(self.keys),
                len(self.keys - before),
                len(before - self.keys),
            )
        elif not self.keys:
            log.warning(
                "CURVE: no authorized keys in %s: every client will be refused", self.directory
            )
        self._listing = listing
        return True

    def check(self) -> None:
        """:meth:`reload` when the last look is more than ``reload_interval`` seconds old."""
        if time.monotonic() - self._looked >= self.reload_interval:
            self.reload()

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether ``key`` (Z85) is authorized (pyzmq's credentials provider protocol);
        looks at the directory first (:meth:`check`)."""
        self.check()
        return key in self.keys


class ZapAuthenticator:
    """The ZAP handler (RFC 27) of one context: CURVE clients by public key, addresses
    by the allow or deny list. A service: ``await start()``, ``await stop()``.

    pyzmq's ``zmq.auth.Authenticator`` does the protocol (``handle_zap_message``: the
    request's frames, the ``200`` / ``400`` reply, the ``allow`` / ``deny`` lists); this
    class serves its socket on the event loop, as pyzmq's ``AsyncioAuthenticator`` does,
    with a :meth:`stop` that awaits the serving task before the socket closes
    (``AsyncioAuthenticator.stop`` cancels the task and closes the socket at once; with
    pyzmq 27, sockets of a context made after that in the same loop were seen never to
    wake, as if the poller's reader outlived its file descriptor), and checks keys against
    :class:`AuthorizedKeys`. Every client that completes a CURVE
    handshake on a socket of ``context`` is asked about here.

    Args:
        config: the keys and address lists.
        context: the context of the sockets to protect (a handler serves one context).

    Attributes:
        authorized: the :class:`AuthorizedKeys` in use.
        accepted: clients let in.
        refused: clients refused, by reason: ``address`` (not allowed, or denied),
            ``key`` (not in the directory), ``other`` (a request that is not one CURVE key:
            another mechanism, a malformed request).
    """

    def __init__(self, config: CurveServerConfig, context: zmq.Context[Any]) -> None:
        self.config = config
        self.context = context
        self.authorized = AuthorizedKeys(config.authorized_keys_dir, config.reload_interval)
        self.accepted = 0
        self.refused: Counter[str] = Counter()
        self._handler: _Handler | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ZapAuthenticator {self.authorized.directory} keys={len(self.authorized)} {state}>"

    @property
    def running(self) -> bool:
        """Whether the handler is bound and serving."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Bind ``inproc://zeromq.zap.01`` on the context and serve it.

        Raises:
            RuntimeError: started already, or another ZAP handler is bound on this
                context (RFC 27: one handler per process; libzmq: per context).
        """
        if self._handler is not None:
            raise RuntimeError(f"{self!r} is running already")
        handler = _Handler(self)
        try:
            handler.start()
        except zmq.ZMQError as exc:
            handler.stop()
            if exc.errno == zmq.EADDRINUSE:
                raise RuntimeError(
                    f"another ZAP handler is bound on this context ({ZAP_ENDPOINT}); a CURVE "
                    "broker needs a context of its own"
                ) from None
            raise
        self._handler = handler
        self._task = asyncio.get_running_loop().create_task(
            handler.serve(), name="cordio.zmq.curve:zap"
        )

    async def stop(self) -> None:
        """Stop serving and close the socket. Safe to call twice."""
        handler, task = self._handler, self._task
        self._handler = self._task = None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # before the socket closes
        if handler is not None:
            handler.close()


class _Handler(zmq.auth.Authenticator):
    """pyzmq's ZAP logic, with :class:`AuthorizedKeys` as the credentials provider."""

    def __init__(self, owner: ZapAuthenticator) -> None:
        super().__init__(owner.context, log=logging.getLogger("cordio.zmq.curve.zap"))
        self.owner = owner
        self.verdict: bool | None = None
        self.poller: zmq.asyncio.Poller | None = None
        self.configure_curve_callback("*", self)
        config = owner.config
        if config.allow:
            self.allow(*config.allow)
        if config.deny:
            self.deny(*config.deny)

    def callback(self, domain: str, key: bytes) -> bool:
        """The credentials provider protocol: whether ``key`` (Z85) is authorized."""
        self.verdict = self.owner.authorized.callback(domain, key)
        return self.verdict

    async def serve(self) -> None:
        poller = self.poller = zmq.asyncio.Poller()
        poller.register(self.zap_socket, zmq.POLLIN)
        sock = self.zap_socket
        while True:
            await poller.poll()
            while True:
                try:
                    request = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    await self.handle_zap_message(request)
                except Exception:  # libzmq waits for an answer: never leave it without one
                    log.exception("CURVE: the ZAP handler failed on a request")
                    if len(request) >= 2:
                        with contextlib.suppress(zmq.ZMQError):
                            sock.send_multipart([b"1.0", request[1], b"500", b"", b"", b""])

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        """pyzmq's answer (RFC 27, "Message Format"), counted and logged: a refusal at
        INFO, naming the client's address and, for an unknown key, the key."""
        self.verdict = None
        await super().handle_zap_message(msg)
        owner = self.owner
        if self.verdict:
            owner.accepted += 1
            return
        address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else "?"
        if self.verdict is False:
            owner.refused["key"] += 1
            log.info(
                "CURVE: refused a client from %s: its key %s is not in %s",
                address,
                z85.encode(msg[6]).decode("ascii"),
                owner.authorized.directory,
            )
        elif len(msg) == 7 and msg[5] == b"CURVE":
            owner.refused["address"] += 1
            log.info("CURVE: refused a client from %s: address not allowed", address)
        else:
            owner.refused["other"] += 1
            log.info("CURVE: refused a ZAP request from %s that is not one CURVE key", address)

    def close(self) -> None:
        if self.poller is not None and self.zap_socket is not None:
            self.poller.unregister(self.zap_socket)
        self.poller = None
        self.stop()


# -- the client's side: the handshake monitor ----------------------------------------------

_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_monitor_ids = itertools.count()
_PROTOCOL_ERRORS = {
    getattr(zmq, name): name for name in dir(zmq) if name.startswith("PROTOCOL_ERROR_")
}


@dataclass(frozen=True)
class HandshakeFailure:
    """Why the CURVE handshakes with a broker failed.

    Attributes:
        event: the monitor event (``HANDSHAKE_FAILED_AUTH``, ``..._PROTOCOL``,
            ``..._NO_DETAIL``).
        value: its value: the ZAP status code (RFC 27: ``400`` refused, ``300`` temporary,
            ``500`` internal error), the ``ZMQ_PROTOCOL_ERROR_*`` code, or an errno.
        failures: failed handshakes in a row when the connection was given up.
        cause: what it means, for people.
    """

    event: str
    value: int
    failures: int
    cause: str


def describe(event: int, value: int) -> str:
    """What a ``HANDSHAKE_FAILED_*`` monitor event means, for people."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        meaning = {
            300: "a temporary error in the broker's ZAP handler",
            400: "the broker refused this peer: its public key is not in the broker's "
            "authorized keys, or its address is not allowed",
            500: "an internal error in the broker's ZAP handler",
        }.get(value, "an unknown ZAP status")
        return f"ZAP status {value} (RFC 27): {meaning}"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        name = _PROTOCOL_ERRORS.get(value, f"protocol error {value:#x}")
        if value == getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", None):
            return f"{name}: the broker does not speak CURVE"
        return f"{name}: the handshake broke the CURVE protocol (RFC 26)"
    reason = os.strerror(value) if value > 0 else "no detail"
    return (
        f"the broker closed the connection during the handshake ({reason}); most often the "
        "broker public key is not the broker's, so it cannot open the HELLO (RFC 26)"
    )


class HandshakeMonitor:
    """Watches the CURVE handshakes of one connecting socket (a socket monitor for the
    ``HANDSHAKE_*`` events) and resolves :attr:`refused` when the broker keeps refusing it.

    A ``HANDSHAKE_FAILED_AUTH`` or ``..._PROTOCOL`` refuses at once (libzmq does not
    reconnect after either); ``..._NO_DETAIL`` after ``failures`` of them in a row with no
    handshake succeeding in between. Make it
    before the socket connects, inside a running event loop; :meth:`close` it before the
    socket closes.

    Args:
        sock: the socket to watch (its context hosts the monitor's ``inproc://`` pair).
        failures: ``HANDSHAKE_FAILED_NO_DETAIL`` events in a row that refuse the
            connection.

    Attributes:
        refused: a future set to the :class:`HandshakeFailure` once the connection counts
            as refused.
        succeeded: handshakes that succeeded.
        failed: handshakes that failed.
        streak: handshakes failed since the last one that succeeded.
        last: the latest failure (``None`` before the first).
    """

    def __init__(self, sock: zmq.asyncio.Socket, *, failures: int = 3) -> None:
        self.failures = failures
        self.succeeded = self.failed = self.streak = 0
        self.last: HandshakeFailure | None = None
        loop = asyncio.get_running_loop()
        self.refused: asyncio.Future[HandshakeFailure] = loop.create_future()
        self._sock = sock
        address = f"inproc://cordio.curve.monitor.{os.getpid()}.{next(_monitor_ids)}"
        self._pair = sock.get_monitor_socket(_HANDSHAKE_EVENTS, address)
        self._task = loop.create_task(self._read(), name="cordio.zmq.curve:monitor")

    async def _read(self) -> None:
        while True:
            try:
                frames = await self._pair.recv_multipart()
                message = parse_monitor_message(frames)
            except zmq.ZMQError:
                return  # closed
            event, value = int(message["event"]), int(message["value"])
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.succeeded += 1
                self.streak = 0
                continue
            self.failed += 1
            self.streak += 1
            name = zmq.Event(event).name or str(event)
            self.last = HandshakeFailure(name, value, self.streak, describe(event, value))
            hard = event != zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL  # libzmq gives those up
            if (hard or self.streak >= self.failures) and not self.refused.done():
                self.refused.set_result(self.last)

    def close(self) -> None:
        """Stop watching (before the socket closes). Safe to call twice."""
        self._task.cancel()
        if not self._pair.closed:
            if not self._sock.closed:
                with contextlib.suppress(zmq.ZMQError):
                    self._sock.disable_monitor()
            self._pair.close(linger=0)


__all__ = [
    "AuthorizedKeys",
    "CurveClientConfig",
    "CurveKeyError",
    "CurveServerConfig",
    "HandshakeFailure",
    "HandshakeMonitor",
    "ZapAuthenticator",
    "configure_client",
    "configure_server",
    "create_certs",
    "describe",
]
