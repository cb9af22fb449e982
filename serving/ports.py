"""Is a TCP port free to listen on? Asked by `eih serve`, `eih ui` and `eih quickstart`
before any long work, so a busy port costs one line instead of minutes of training and a
traceback from the server at the end."""

from __future__ import annotations

import errno
import socket


def port_problem(host: str, port: int, what: str = "eih serve") -> str | None:
    """None when `host:port` can be listened on, else one line with the fix.

    The probe binds the address the way servers do (SO_REUSEADDR, so a port in TIME_WAIT
    after a server stopped counts as free) and closes it at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return f"cannot listen on {host}: the host name does not resolve (pass --host 127.0.0.1 or an address)"
    family, socktype, proto, _, address = infos[0]
    with socket.socket(family, socktype, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use (by another {what}?): stop it or pass --port N"
            if exc.errno == errno.EACCES:
                return f"port {port} on {host} needs privileges to listen on: pass --port N (1024 or above)"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"cannot listen on {host}: it is not an address of this machine (pass --host 127.0.0.1)"
            return f"cannot listen on port {port} on {host} ({errno.errorcode.get(exc.errno, exc.errno)}): pass --port N"
    return None
