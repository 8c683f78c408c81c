"""The broker's side of CURVE: a ZAP handler (ZeroMQ RFC 27) deciding which client keys
and addresses a CURVE server socket admits, from a directory of authorized public keys
read again when it changes. See :mod:`cordio.zmq.curve` for the whole picture."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cordio.errors import require_extra

require_extra("zmq", feature="ZeroMQ CURVE security", extra="zmq")

import zmq.asyncio  # noqa: E402
import zmq.auth  # noqa: E402
from zmq.utils import z85  # noqa: E402

if TYPE_CHECKING:
    pass

from cordio.zmq.curve import (  # noqa: E402
    PUBLIC_SUFFIX,
    ZAP_ENDPOINT,
    CurveKeyError,
    CurveServerConfig,
    _read_keys,
)

log = logging.getLogger("cordio.zmq.curve")


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
