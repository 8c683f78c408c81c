"""ZeroMQ services (``cordio[zmq]``).

:mod:`cordio.zmq.mdp` is the Majordomo Protocol core: the wire format of MDP/0.1 (ZeroMQ
RFC 7) and MDP/0.2 (RFC 18) with the management interface (RFC 8), and an asyncio broker,
worker and client built on pyzmq's asyncio sockets. Importing this package imports nothing
of pyzmq; :mod:`cordio.zmq.mdp` raises :class:`~cordio.errors.MissingExtraError` naming the
extra when pyzmq is not installed.
"""
