"""The Majordomo Protocol: MDP/0.1 (ZeroMQ RFC 7), MDP/0.2 (RFC 18) and MMI (RFC 8).

- :mod:`~cordio.zmq.mdp.frames`: the wire format, as frozen value objects (no pyzmq needed);
- :class:`MDPBroker`: the broker, on one ROUTER socket, both versions at once;
- :class:`MDPWorker`: a worker for one service, one request at a time per connection;
- :class:`MDPClient`: a client with retries (Paranoid Pirate) and concurrent requests;
- :mod:`~cordio.zmq.mdp.errors`: :class:`MDPError`, :class:`RequestTimeout`,
  :class:`MalformedMessage` and the error reply convention.

Names are imported on first use, so the wire format is usable without pyzmq; the broker,
worker and client need ``cordio[zmq]`` (a :class:`~cordio.errors.MissingExtraError` names
it otherwise).
"""
