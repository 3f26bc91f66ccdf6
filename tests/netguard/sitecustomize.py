"""A network guard for child processes started by ``tests/test_offline.py``.

Put this folder on ``PYTHONPATH`` and Python imports it at start-up (``site`` imports any
``sitecustomize`` module it finds). From then on every connection to, and every name lookup
of, a destination other than loopback (127.0.0.0/8, ::1, ``localhost``) or a Unix socket
fails with ``OSError(ENETUNREACH)``, and is appended as one JSON line (call, host, port,
process, a short stack) to the file named by ``NETGUARD_LOG``, when that is set. Each guarded
process also appends its pid and command line to ``NETGUARD_STARTED`` (when set) as it starts,
so a test can tell that the guard was in place, not merely that nothing was logged.

Not a test module: pytest only collects ``test_*.py``.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import sys
import traceback
from typing import Any

LOG_ENV = "NETGUARD_LOG"
STARTED_ENV = "NETGUARD_STARTED"
_LOCAL_NAMES = {"localhost"}

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_create_connection = socket.create_connection
_getaddrinfo = socket.getaddrinfo


def is_loopback(host: object) -> bool:
    """Whether ``host`` (a name or an address, as str or bytes) can only mean this machine."""
    if isinstance(host, bytes | bytearray):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _refuse(call: str, host: object, port: object) -> OSError:
    """Log the attempt and return the error to raise."""
    path = os.environ.get(LOG_ENV)
    if path:
        frames = [f for f in traceback.extract_stack() if f.filename != __file__][-8:]
        entry = {
            "call": call,
            "host": repr(host),
            "port": repr(port),
            "pid": os.getpid(),
            "argv": sys.orig_argv[:6],
            "stack": [f"{f.filename}:{f.lineno} {f.name}: {f.line}" for f in frames],
        }
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
    return OSError(errno.ENETUNREACH, f"{os.strerror(errno.ENETUNREACH)} (network guard: {host})")


def _check_address(call: str, sock: socket.socket, address: Any) -> None:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return
    host, port = (address[0], address[1]) if isinstance(address, tuple) else (address, None)
    if not is_loopback(host):
        raise _refuse(call, host, port)


def connect(self: socket.socket, address: Any) -> None:
    _check_address("connect", self, address)
    _connect(self, address)


def connect_ex(self: socket.socket, address: Any) -> int:
    _check_address("connect_ex", self, address)
    return _connect_ex(self, address)


def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    host, port = address[0], address[1]
    if not is_loopback(host):
        raise _refuse("create_connection", host, port)
    return _create_connection(address, *args, **kwargs)


def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not is_loopback(host):  # None: this machine's own addresses
        raise _refuse("getaddrinfo", host, port)
    return _getaddrinfo(host, port, *args, **kwargs)


socket.socket.connect = connect  # type: ignore[assignment]
socket.socket.connect_ex = connect_ex  # type: ignore[assignment]
socket.create_connection = create_connection  # type: ignore[assignment]
socket.getaddrinfo = getaddrinfo

if os.environ.get(STARTED_ENV):
    with open(os.environ[STARTED_ENV], "a", encoding="utf-8") as started:
        started.write(json.dumps({"pid": os.getpid(), "argv": sys.orig_argv}) + "\n")
