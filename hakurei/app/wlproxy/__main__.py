"""``python -m hakurei.app.wlproxy``: run the filtering proxy until killed.

Either ``--listen-fd N`` (a listening AF_UNIX stream socket inherited from
the launcher, which owns its path) or ``--listen PATH`` (created here; for
benchmarks and manual use), and ``--upstream PATH``, the compositor's socket.
``--allow IFACE`` adds an interface to the default allowlist;
``--no-default-allow`` starts from an empty one.  A bad argument is one line
on stderr and exit status 125, like the rest of hakurei.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import stat
import sys

from .allow import DEFAULT_ALLOW
from .loop import Proxy

USAGE_ERROR = 125


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        fail(message)


def fail(message: str) -> None:
    print(f"wlproxy: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def listening_socket(fd: int) -> socket.socket:
    """The inherited fd as a socket, if it really is a listening AF_UNIX stream socket."""
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            fail(f"fd {fd} is not a socket")
        sock = socket.socket(fileno=fd)
    except OSError as e:
        fail(f"fd {fd}: {e.strerror}")
        raise
    if (
        sock.family != socket.AF_UNIX
        or sock.type != socket.SOCK_STREAM
        or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    ):
        fail(f"fd {fd} is not a listening AF_UNIX stream socket")
    os.set_inheritable(fd, False)
    return sock


def main(argv: list[str] | None = None) -> None:
    p = _Parser(prog="python -m hakurei.app.wlproxy", description=__doc__)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen-fd", type=int, metavar="N")
    where.add_argument("--listen", metavar="PATH")
    p.add_argument("--upstream", required=True, metavar="PATH")
    p.add_argument("--allow", action="append", default=[], metavar="IFACE")
    p.add_argument("--no-default-allow", action="store_true")
    a = p.parse_args(argv)
    for name in a.allow:
        if not name.isascii() or not name.replace("_", "a").isalnum():
            fail(f"--allow {name!r}: not a Wayland interface name")
    allow = frozenset(n.encode() for n in a.allow)
    if not a.no_default_allow:
        allow |= DEFAULT_ALLOW
    if not os.path.isabs(a.upstream):
        fail(f"--upstream {a.upstream!r}: not an absolute path")
    if a.listen_fd is not None:
        listener = listening_socket(a.listen_fd)
    else:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind(a.listen)
            listener.listen(128)
        except OSError as e:
            fail(f"--listen {a.listen}: {e.strerror}")
    # Queued fds count against RLIMIT_NOFILE; the soft limit (often 1024) is
    # far below what MAX_CLIENTS clients may legitimately hold in flight.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        Proxy(listener, a.upstream, allow).serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
