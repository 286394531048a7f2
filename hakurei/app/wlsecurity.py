"""A ``wp_security_context_v1`` listening socket of the app's own, where the compositor offers one.

The protocol (wayland-protocols, staging/security-context) lets a sandbox
engine hand the compositor a listening socket: every client that connects
through it is tagged with the engine, app id and instance id the engine
set, and the compositor may hide privileged globals from it (screencopy,
data control, virtual input...), as wlroots 0.17+, KWin 6 and Mutter 46 do.
The engine also hands over ``close_fd``: when the compositor sees it hang
up, it stops accepting on that socket (clients already connected stay).

The launcher makes the socket in the instance's own directory, sends it and
the read end of a fresh pipe, and keeps the write end for as long as the app
runs (a task in the session's nursery).  The kernel closes it when the
launcher exits by any path, SIGKILL included, so the listener never outlives
the launcher; the socket file itself is the journal's to remove.

Requests used, in order, on one connection made as the user:
``wl_registry.bind`` of ``wp_security_context_manager_v1`` (version 1);
``create_listener(new_id, listen_fd, close_fd)`` (opcode 1); on the new
context ``set_sandbox_engine`` (1), ``set_app_id`` (2), ``set_instance_id``
(3), ``commit`` (4); then a ``wl_display.sync`` round trip, so a protocol
error (a nested context, a bad fd) is reported before the app starts.  The
connection is closed after that; the context lives on in the compositor.
"""

from __future__ import annotations

import os
import socket

from .wlclient import Connection, WaylandError, message, string, uint

MANAGER = "wp_security_context_manager_v1"
#: The sandbox engine name hakurei (Go) sets, so compositor policies written for it apply.
ENGINE = "app.hakurei"
_CREATE_LISTENER = 1
_SET_SANDBOX_ENGINE, _SET_APP_ID, _SET_INSTANCE_ID, _COMMIT = 1, 2, 3, 4
#: sockaddr_un's sun_path
MAX_PATH = 107


def offered(compositor: str, timeout: float = 5.0) -> bool:
    """Whether a client of ``compositor`` is offered the security-context manager."""
    with Connection(compositor, timeout) as conn:
        return any(interface == MANAGER for interface, _ in conn.globals().values())


def create_listener(
    compositor: str, path: str, app_id: str, instance_id: str, timeout: float = 5.0
) -> int:
    """Listen at ``path`` (which must not exist) through a new security context.

    Returns the write end of the close pipe: keep it open while the app may
    connect; closing it (or exiting) makes the compositor stop listening.
    ``WaylandError`` on any failure, with nothing left open.
    """
    if len(os.fsencode(path)) > MAX_PATH:
        raise WaylandError(f"socket path {path} is longer than {MAX_PATH} bytes")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    close_r, close_w = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            listener.bind(path)
            listener.listen(64)
        except OSError as e:
            raise WaylandError(f"cannot listen at {path}: {os.strerror(e.errno or 0)}") from None
        with Connection(compositor, timeout) as conn:
            manager = conn.bind(MANAGER, 1)
            context = conn.new_id()
            conn.send(
                message(manager, _CREATE_LISTENER, uint(context)),
                fds=[listener.fileno(), close_r],
            )
            conn.send(message(context, _SET_SANDBOX_ENGINE, string(ENGINE)))
            conn.send(message(context, _SET_APP_ID, string(app_id)))
            conn.send(message(context, _SET_INSTANCE_ID, string(instance_id)))
            conn.send(message(context, _COMMIT))
            conn.roundtrip()
    except BaseException:
        os.close(close_w)
        raise
    finally:
        listener.close()
        os.close(close_r)
    return close_w


__all__ = ["ENGINE", "MANAGER", "create_listener", "offered"]
