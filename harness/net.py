"""Ports on loopback: a free one to listen on, and whether something listens on one."""

import socket


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(host, port, timeout=1):
    """True when a TCP connection to ``host:port`` is accepted."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False
