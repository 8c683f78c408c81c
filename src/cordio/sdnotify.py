"""systemd service notifications (``sd_notify``): READY=1, STOPPING=1, WATCHDOG=1.

Protocol: one datagram per message to the ``AF_UNIX`` socket named by ``NOTIFY_SOCKET``
(a leading ``@`` means the abstract namespace); the watchdog interval comes from
``WATCHDOG_USEC`` (microseconds), and a ``WATCHDOG=1`` is sent every half interval.
Source: sd_notify(3) and sd_watchdog_enabled(3), systemd documentation.
Without ``NOTIFY_SOCKET`` every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("cordio.sdnotify")


class Notifier:
    """Sends ``sd_notify`` messages when the process runs under systemd.

    Args:
        environ: where to read ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``; default ``os.environ``.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, message: str) -> bool:
        """Send ``message`` (e.g. ``"READY=1"``); return whether it was sent.

        Errors are logged at WARNING and never raised: a supervisor that went away must not
        stop the service.
        """
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
        except OSError as exc:
            log.warning("sd_notify %r to %r failed: %s", message, self.address, exc)
            return False
        return True

    async def watchdog(self) -> None:
        """Send ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` until cancelled."""
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)
