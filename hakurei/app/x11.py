"""X11: one display's socket and a cookie of the app's own, revoked when the app is gone.

What the app gets
    The socket of the host's display ``:N`` (``/tmp/.X11-unix/XN``, bound alone:
    no other display's socket is visible), an Xauthority file with one
    **FamilyWild** MIT-MAGIC-COOKIE-1 entry for ``:N`` at
    ``<runtime>/Xauthority`` (read-only; FamilyWild because the container's
    hostname is not the host's and libXau matches a FamilyLocal entry by
    hostname), ``DISPLAY=:N``, ``XAUTHORITY`` and ``XDG_SESSION_TYPE=x11`` (unless
    Wayland is enabled too: Electron and GTK pick their backend from it).

Which cookie (``x11_cookie``)
    ``untrusted`` (the default): a new authorization minted by the X SECURITY
    extension with trust level *untrusted*.  Its clients cannot read other
    clients' windows, properties or selections, cannot grab the keyboard and
    see about 2 extensions instead of 20-odd (no XInput snooping, no XTEST
    injection, no GLX).  Revert revokes it, and the server then disconnects
    every client still using it.  A server without SECURITY is refused with
    one line (ask for ``trusted`` to go on).
    ``trusted``: the user's own cookie for ``:N`` (from ``$XAUTHORITY``, else
    ``~/.Xauthority``), rewritten as FamilyWild.  The app is then as powerful
    as any X client of the user: it can log keystrokes and screenshots of
    every window.  Nothing is minted, so nothing is revoked.

What it does not do
    No TCP displays (``host:N``): the container has no route to them, and a
    cookie for a remote server is not ours to confine.  No ``unix:/path``
    displays: libxcb 1.15 cannot parse them.  No xhost / server-interpreted
    entries: the cookie alone grants access, so nothing changes for other
    clients of the server.  X11 with ``host_net`` needs ``host_abstract``:
    libxcb connects to the abstract socket ``@/tmp/.X11-unix/XN`` first and
    falls back to the path only on ECONNREFUSED; in the host's network
    namespace Landlock's abstract-socket scope makes it EPERM and libxcb 1.15
    gives up.

Undo records
    ``x11_revoke`` ``{"display": N, "auth_id": ID, "xauthority": PATH}``:
    revoke authorization ID on ``:N``, connecting with the user's cookie read
    from PATH (the file the monitor used; the replaying ``gc`` may run with
    another environment).  No server, or an ID it does not know, is success:
    the authorization died with the server.  The Xauthority file in the
    instance directory is a plain ``remove`` record.

    The authorization id exists only once the server has answered, so this
    record is written right *after* the mint, not before.  What covers the
    gap is the server's own timeout: the authorization is minted to die
    ``TIMEOUT`` seconds after its last client leaves (or after its creation,
    if none ever comes), and the monitor holds one connection on it for the
    app's whole life (a task in ``session.nursery``), so an app that
    disconnects and reconnects later keeps working.  A monitor SIGKILLed at
    any point leaves an authorization that the server drops by itself
    ``TIMEOUT`` seconds after the app's last connection closes, whether or not
    ``gc`` ever runs.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any

from .. import ops as _ops
from ..std import BIND_WRITABLE
from . import host, journal, xauth
from .enable import EnableError, Grant, Session

#: ``[unix/][unix]:N[.S]``: the local forms of DISPLAY (libxcb's "protocol/host:display.screen")
_LOCAL = re.compile(r"(?:unix/)?(?:unix)?:([0-9]{1,6})(?:\.[0-9]{1,6})?")
#: ``[protocol/]host:N[.S]`` with a host name or a bracketed IPv6 address: a network display
_REMOTE = re.compile(
    r"(?:[a-z0-9]+/)?(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):[0-9]{1,6}(?:\.[0-9]{1,6})?"
)

#: The file name in the instance dir and inside the runtime dir.
AUTHORITY = "Xauthority"

#: Seconds an untrusted authorization outlives its last client (see "Undo records" above).
TIMEOUT = 10


def _shown(value: str) -> str:
    """A hostile string made safe for one line of output."""
    text = value[:64] + ("..." if len(value) > 64 else "")
    return repr(text)


def parse_display(value: str | None) -> int:
    """The display number of a local ``DISPLAY``; ``EnableError`` (one line) for anything else."""
    if value is None or value == "":
        raise EnableError("x11: DISPLAY is not set")
    m = _LOCAL.fullmatch(value)
    if m is not None:
        return int(m.group(1))
    if _REMOTE.fullmatch(value):
        raise EnableError(
            f"x11: DISPLAY {_shown(value)} is a network display; "
            "only a local display (:N) can be given to an app"
        )
    raise EnableError(f"x11: DISPLAY {_shown(value)} is not a local display (:N or unix:N)")


def authority_path(host_env: Any) -> str:
    """The user's Xauthority file as libXau finds it: $XAUTHORITY, else $HOME/.Xauthority."""
    path = host_env.get("XAUTHORITY") or ""
    if not path:
        home = host_env.get("HOME") or ""
        if not home:
            raise EnableError("x11: neither XAUTHORITY nor HOME is set: no cookie to start from")
        path = os.path.join(home, ".Xauthority")
    if not os.path.isabs(path) or "\0" in path:
        raise EnableError(f"x11: XAUTHORITY {_shown(path)} is not an absolute path")
    return os.path.normpath(path)


def user_cookie(path: str, display: int) -> bytes | None:
    """The user's MIT-MAGIC-COOKIE-1 for ``:display`` as their own clients would pick it."""
    try:
        data = host.x11_read_authority(path)
    except host.HostError as e:
        raise EnableError(f"x11: {e}") from None
    if data is None:
        return None
    entry = xauth.best(xauth.parse(data), display, host.hostname())
    return None if entry is None else entry.data


class X11:
    """The ``x11`` enablement (see the module docstring)."""

    name = "x11"

    def __init__(self) -> None:
        self.display: int | None = None
        self.authority = ""
        self.cookie: bytes | None = None
        #: the connection that keeps the cookie alive when there is no nursery to hold it
        self.held: socket.socket | None = None

    def check(self, session: Session) -> None:
        container = session.config.container
        if container.host_net and not container.host_abstract:
            raise EnableError(
                "x11: with host_net the app also needs host_abstract: libxcb 1.15 tries the "
                "abstract X socket first and does not fall back when Landlock refuses it"
            )
        display = parse_display(session.host_env.get("DISPLAY"))
        socket_path = host.x11_socket_path(display)
        if not host.x11_is_socket(socket_path):
            raise EnableError(f"x11: {socket_path} is not a socket (no X server on :{display}?)")
        self.authority = authority_path(session.host_env)
        self.cookie = user_cookie(self.authority, display)
        if session.config.x11_cookie == "trusted":
            if self.cookie is None:
                raise EnableError(
                    f"x11: no MIT-MAGIC-COOKIE-1 for :{display} in {self.authority} "
                    '(x11_cookie "trusted" passes the user\'s own cookie)'
                )
        else:
            try:
                has = host.x11_has_security(display, self.cookie)
            except host.HostError as e:
                raise EnableError(f"x11: {e}") from None
            if not has:
                raise EnableError(
                    f"x11: the X server on :{display} has no SECURITY extension, so no untrusted "
                    'cookie can be made; set x11_cookie to "trusted" to pass the user\'s own'
                )
        self.display = display

    async def prepare(self, session: Session) -> Grant:
        import trio

        if self.display is None:
            self.check(session)
        assert self.display is not None
        display = self.display
        trusted = session.config.x11_cookie == "trusted"
        if trusted:
            assert self.cookie is not None
            cookie = self.cookie
            note = f"x11: :{display} with the user's own (trusted) cookie"
        else:
            try:
                auth_id, cookie = await trio.to_thread.run_sync(
                    host.x11_generate, display, self.cookie, xauth.UNTRUSTED, TIMEOUT
                )
            except host.HostError as e:
                raise EnableError(f"x11: {e}") from None
            session.journal.record(
                "x11_revoke", display=display, auth_id=auth_id, xauthority=self.authority
            )
            try:
                held = await trio.to_thread.run_sync(host.x11_hold, display, cookie)
            except host.HostError as e:
                raise EnableError(f"x11: cannot use the new cookie: {e}") from None
            if session.nursery is not None:
                session.nursery.start_soon(_hold, held)
            else:
                self.held = held
            note = f"x11: :{display} with an untrusted cookie (authorization {auth_id})"
        session.journal.record("remove", path=AUTHORITY)
        host.x11_write_private(
            session.instance_dir_fd, AUTHORITY, xauth.dump([xauth.wild(display, cookie)])
        )
        socket_path = host.x11_socket_path(display)
        inside = f"{session.runtime}/{AUTHORITY}"
        ops = (
            _ops.Ops()
            .bind(socket_path, socket_path, BIND_WRITABLE)
            .bind(os.path.join(session.instance_dir, AUTHORITY), inside)
        )
        env = {"DISPLAY": f":{display}", "XAUTHORITY": inside}
        if not session.config.enablements.wayland:
            env["XDG_SESSION_TYPE"] = "x11"
        session.facts["x11_display"] = display
        return Grant(ops=list(ops), env=env, notes=[note])


async def _hold(sock: socket.socket) -> None:
    """Keep one connection on the app's cookie open until the app is gone (then close it)."""
    import trio

    with sock:
        await trio.sleep_forever()


# --- the undo record -------------------------------------------------------------------


def _check_revoke(rec: dict[str, Any], ctx: journal.Context) -> None:
    display, auth_id, path = rec["display"], rec["auth_id"], rec["xauthority"]
    if not 0 <= display < 1_000_000:
        raise journal.JournalError(f"refused: x11 display {display}")
    if not 0 < auth_id < 1 << 32:
        raise journal.JournalError(f"refused: x11 authorization id {auth_id}")
    if not path.startswith("/") or "\0" in path or os.path.normpath(path) != path:
        raise journal.JournalError(f"refused: Xauthority path {path[:80]!r}")


def _revert_revoke(rec: dict[str, Any], ctx: journal.Context) -> None:
    display, auth_id = rec["display"], rec["auth_id"]
    try:
        cookie = user_cookie(rec["xauthority"], display)
    except EnableError:
        cookie = None  # try without: a server that lets us in otherwise can still revoke
    try:
        host.x11_revoke(display, cookie, auth_id)
    except host.HostError as e:
        raise journal.JournalError(
            f"cannot revoke X authorization {auth_id} on :{display}: {e}"
        ) from None


journal.register(
    journal.Kind(
        "x11_revoke",
        {"display": int, "auth_id": int, "xauthority": str},
        _check_revoke,
        _revert_revoke,
    )
)
