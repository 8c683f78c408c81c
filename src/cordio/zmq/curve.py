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

import errno
import ipaddress
import logging
import os
import shutil
import stat
import tempfile
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


# The ZAP handler and the handshake monitor live in modules of their own; their names are
# importable from here too.

__all__ = [
    "CurveClientConfig",
    "CurveKeyError",
    "CurveServerConfig",
    "configure_client",
    "configure_server",
    "create_certs",
]
