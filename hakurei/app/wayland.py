"""Direct Wayland: bind the compositor's own socket into the app's container.

This is hakurei's ``direct_wayland`` mode (reference launcher.md §2.2), the
only Wayland mode this issue builds.  The app becomes an ordinary client of
the user's compositor, indistinguishable from the user's other clients, so
it gets every global the compositor offers: on wlroots compositors that
includes ``zwlr_screencopy_manager_v1`` (read what other windows show),
``zwlr_data_control_manager_v1`` (read and set the clipboard without focus)
and virtual keyboard/pointer protocols (type and click into other windows).
Hence the loud warning at every launch, and the refusal without
``direct_wayland``: the safer modes (a ``wp_security_context_v1`` socket, or
a filtering proxy; no Debian 12 compositor offers the former) are the next
issue's, and a config asking for Wayland without opting in to direct mode
must not silently get it.

The socket is found exactly as libwayland's ``wl_display_connect(NULL)``
finds it: ``WAYLAND_DISPLAY`` unset means ``wayland-0``; an absolute value is
the path itself; anything else is taken relative to ``XDG_RUNTIME_DIR``,
which must then be set and absolute.  (``WAYLAND_SOCKET``, an inherited fd,
is not something a launcher can hand on; it is ignored.)

No host action: nothing is created or changed on the host, so there is no
undo record and nothing for ``gc``.  A compositor that goes away while the
app runs is the app's problem, as for any client.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from ..errors import show
from ..ops import Ops
from .enable import EnableError, Grant, Session

#: The name the app sees, relative to its own XDG_RUNTIME_DIR.
INSIDE_NAME = "wayland-0"

#: One line on stderr at every direct launch: what the app can do with the socket.
WARNING = (
    "hakurei: warning: direct Wayland: {app} is an ordinary client of your compositor "
    "and can use every protocol it offers: read other windows' contents (screencopy) "
    "and the clipboard, and inject input (virtual keyboard/pointer) where offered\n"
)

REFUSAL = (
    "wayland: only direct_wayland is available yet (the app would see everything other "
    "windows show); the security-context and filtering-proxy modes come with the next "
    "issue: set direct_wayland to accept this, or disable wayland"
)


def socket_path(host_env: Mapping[str, str]) -> str:
    """The compositor socket a Wayland client started with ``host_env`` connects to.

    ``EnableError`` when libwayland would fail before connecting (a relative
    name with no usable ``XDG_RUNTIME_DIR``).
    """
    name = host_env.get("WAYLAND_DISPLAY")
    if name is None:
        name = "wayland-0"
    if name.startswith("/"):
        return name
    runtime = host_env.get("XDG_RUNTIME_DIR")
    if not runtime or not runtime.startswith("/"):
        what = "not set" if not runtime else f"not absolute ({show(runtime)})"
        raise EnableError(
            f"wayland: XDG_RUNTIME_DIR is {what}, so the compositor socket "
            f"{show(name)} cannot be found"
        )
    return f"{runtime.rstrip('/')}/{name}"


def check_socket(path: str) -> None:
    """``EnableError`` unless ``path`` is (through symlinks) a unix socket."""
    try:
        st = os.stat(path)
    except OSError as e:
        reason = "does not exist" if isinstance(e, FileNotFoundError) else os.strerror(e.errno or 0)
        raise EnableError(
            f"wayland: compositor socket {show(path)}: {reason} (is a Wayland compositor "
            "running, and WAYLAND_DISPLAY right?)"
        ) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise EnableError(f"wayland: {show(path)} is not a socket")


class DirectWayland:
    """The compositor's socket at ``<runtime>/wayland-0``, and a warning of what it gives."""

    name = "wayland"

    def check(self, session: Session) -> None:
        if not session.config.direct_wayland:
            raise EnableError(REFUSAL)
        check_socket(socket_path(session.host_env))

    async def prepare(self, session: Session) -> Grant:
        self.check(session)  # again: the socket may have gone since
        path = socket_path(session.host_env)
        app = show(session.config.id) if session.config.id else "the app"
        try:
            os.write(2, WARNING.format(app=app).encode(errors="replace"))
        except OSError:
            pass  # no stderr: the note below still records it
        session.log(f"wayland: binding compositor socket {show(path)} (direct)")
        return Grant(
            ops=list(Ops().bind(path, f"{session.runtime}/{INSIDE_NAME}")),
            env={"WAYLAND_DISPLAY": INSIDE_NAME, "XDG_SESSION_TYPE": "wayland"},
            notes=[f"wayland: direct, the compositor socket {show(path)}"],
        )
