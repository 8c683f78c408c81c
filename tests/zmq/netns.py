"""Hosts of their own for tests: Linux network namespaces on one LAN.

::

    network = Network.build(["broker", "w1", "w2"])   # NetworkUnavailable: say why
    network["w1"].command("python", "-m", ...)        # ip netns exec cordio-PID-w1 python ...
    network.close()                                   # always: deletes every namespace

Each host is a namespace with ``lo`` up and an ``eth0`` at ``10.231.0.N/24``, the other end
of a veth pair whose end is a port of a bridge in a namespace of its own (the switch). The
root namespace is never touched; deleting a namespace deletes its interfaces, and with a
veth end its peer. Names carry the test process's pid; namespaces left by a test process
that died without its finalizer are deleted by the next :meth:`Network.build`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

#: The LAN's /24, private and unused elsewhere on the machine (it exists only inside the
#: namespaces, so concurrent test runs do not clash either).
SUBNET = "10.231.0"
PREFIX = "cordio-"
_OURS = re.compile(rf"^{PREFIX}(\d+)-")


class NetworkUnavailable(Exception):
    """Namespaces cannot be made here; the message says why."""


@dataclass(frozen=True)
class Host:
    """A namespace: its name and its address on the LAN."""

    namespace: str
    address: str

    def command(self, *args: str) -> list[str]:
        """``args`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *args]


def ip(*args: str) -> str:
    """Run ``ip ARGS``; its output.

    Raises:
        NetworkUnavailable: it failed, with its error message.
    """
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode:
        raise NetworkUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep() -> None:
    """Delete the namespaces of test processes that are gone."""
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        found = _OURS.match(name)
        if found and not _alive(int(found.group(1))):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@dataclass
class Network:
    """Hosts on one LAN; ``network[role]`` is the host of that role."""

    hosts: dict[str, Host] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)

    def __getitem__(self, role: str) -> Host:
        return self.hosts[role]

    @classmethod
    def build(cls, roles: Sequence[str]) -> Network:
        """A switch and one host per role, hosts at ``10.231.0.1``, ``.2``... in order.

        Raises:
            NetworkUnavailable: not root, no ``ip`` command, or the kernel refused a
                namespace, a veth pair or a bridge (the message says which and why).
        """
        if os.geteuid() != 0:
            raise NetworkUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NetworkUnavailable("no `ip` command (iproute2)")
        sweep()
        network = cls()
        try:
            switch = network._namespace(f"{PREFIX}{os.getpid()}-switch")
            ip("-n", switch, "link", "add", "br0", "type", "bridge")
            ip("-n", switch, "link", "set", "br0", "up")
            for number, role in enumerate(roles, 1):
                namespace = network._namespace(f"{PREFIX}{os.getpid()}-{role}")
                host = Host(namespace, f"{SUBNET}.{number}")
                port = f"port{number}"
                # made in the switch, the host's end moved into the host at once
                ip("-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0")
                ip("-n", switch, "link", "set", "eth0", "netns", host.namespace)
                ip("-n", switch, "link", "set", port, "master", "br0", "up")
                ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
                ip("-n", host.namespace, "link", "set", "eth0", "up")
                network.hosts[role] = host
        except BaseException:
            network.close()
            raise
        return network

    def _namespace(self, name: str) -> str:
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def close(self) -> None:
        """Delete every namespace (their processes must be gone: a namespace stays while
        a process is in it)."""
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self.namespaces.clear()
