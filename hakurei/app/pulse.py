"""PulseAudio: a socket of the app's own on the user's server, unloaded at revert.

The user's server is found as libpulse finds it: ``PULSE_SERVER`` when set
(only one local ``unix:`` socket is accepted: an app in a private network
namespace cannot reach anything else, and a list of servers would make the
one we bind a guess), otherwise ``$XDG_RUNTIME_DIR/pulse/native``.

``pulse_socket: "instance"`` (the default) asks that server to load
``module-native-protocol-unix socket=<instance dir>/pulse/native`` and binds
that socket at ``<runtime>/pulse/native`` inside.  The app's uid is the
server's (the launcher never switches uids), so the server lets the client in
by its SCM_CREDENTIALS alone and the module needs no auth arguments: its
defaults (no anonymous access, credentials or cookie) are what lets exactly
this user in.  Unloading the module disconnects every client that came
through it (``pa_native_protocol_disconnect``), so revert cuts a running
stream: revocation is real, not merely "no new connections".  The main
socket is never visible inside in this mode.

Revert is the replay of two undo records, written before their actions:
``remove pulse`` (the directory the socket lives in; the module does not
create it) and ``pulse_unload`` ``{"server", "socket"}``.  ``pulse_unload``
lists the server's modules and unloads every ``module-native-protocol-unix``
whose ``socket=`` argument is exactly our socket path: a module index alone
could have been reused by a restarted server, the path holds the instance's
random id and cannot.  A server that is gone took its modules with it, and a
module that is not listed is already unloaded: both are success.

When the module cannot be loaded (a server without it, a socket path too long
for ``sun_path``), the app gets the main socket instead, with a one-line
warning on stderr and a grant note; ``pulse_socket: "shared"`` asks for that
from the start, without the warning.  The cookie (``PULSE_COOKIE``, else
``$XDG_CONFIG_HOME/pulse/cookie`` or ``~/.config/pulse/cookie``, else
``~/.pulse-cookie``) is bound read-only with ``PULSE_COOKIE`` when it is a
regular file: a server configured for cookies only still lets the app in.

What this does not do: make PulseAudio access small.  A client may load
modules, which run in the server as the user, outside the container; a
socket of the app's own makes access revocable, not confined (see
``docs/launcher.md``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from . import host
from . import journal as _journal
from .enable import EnableError, Grant, Session

#: the undo kind that unloads the instance's module
KIND = "pulse_unload"
MODULE = "module-native-protocol-unix"
#: the instance's socket, relative to its directory (the directory is ours to make)
DIR = "pulse"
SOCKET = f"{DIR}/native"
#: sizeof(sockaddr_un.sun_path) - 1: a longer path cannot be bound or connected to
SUN_PATH_MAX = 107
#: what a path we put in a module argument or a server string must not hold:
#: libpulse splits server strings at whitespace, and modargs quote with these
_UNSAFE = frozenset(" \t\n\r\v\f\"'\\")


def _path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a PulseAudio socket here, or None."""
    if not path.startswith("/"):
        return "is not an absolute path"
    if not path.isprintable() or any(c in _UNSAFE for c in path):
        return "has whitespace, quotes or control characters"
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        return f"is longer than {SUN_PATH_MAX} bytes (a unix socket's limit)"
    return None


def server_path(env: Mapping[str, str]) -> str:
    """The user's server socket as libpulse would find it, or ``EnableError`` (one line).

    An empty ``PULSE_SERVER`` reads as unset (shells export empty variables).
    """
    given = env.get("PULSE_SERVER", "").strip()
    if given:
        if len(given.split()) > 1:
            raise EnableError(
                f"pulse: PULSE_SERVER={given[:80]!r} lists several servers; give one unix: socket"
            )
        path = given.removeprefix("unix:")
        if not path.startswith("/"):
            raise EnableError(
                f"pulse: PULSE_SERVER={given[:80]!r} is not a local unix: socket path; "
                "a confined app can only be given one"
            )
        where = "PULSE_SERVER"
    else:
        runtime = env.get("XDG_RUNTIME_DIR", "")
        if not runtime.startswith("/"):
            raise EnableError(
                "pulse: XDG_RUNTIME_DIR is not set and PULSE_SERVER names no socket: "
                "cannot find the PulseAudio server"
            )
        path = f"{runtime}/pulse/native"
        where = "XDG_RUNTIME_DIR"
    path = os.path.normpath(path)
    problem = _path_problem(path)
    if problem:
        raise EnableError(f"pulse: the server socket {path[:120]!r} (from {where}) {problem}")
    return path


def cookie_path(env: Mapping[str, str]) -> str | None:
    """The cookie file libpulse's client would send, if one exists as a regular file."""
    candidates = []
    if env.get("PULSE_COOKIE"):
        candidates.append(env["PULSE_COOKIE"])  # libpulse uses it alone when set
    else:
        home = env.get("HOME", "")
        config = env.get("XDG_CONFIG_HOME", "")
        if config.startswith("/"):
            candidates.append(f"{config}/pulse/cookie")
        elif home.startswith("/"):
            candidates.append(f"{home}/.config/pulse/cookie")
        if home.startswith("/"):
            candidates.append(f"{home}/.pulse-cookie")
    for path in candidates:
        if path.startswith("/") and os.path.isfile(path):
            return os.path.normpath(path)
    return None


# --- the module and its argument -------------------------------------------------------


def module_argument(socket: str) -> str:
    """The argument we load the module with (``socket`` passed ``_path_problem``)."""
    return f'socket="{socket}"'


def parse_modargs(argument: str) -> dict[str, str]:
    """A module argument string as PulseAudio's ``pa_modargs_new`` reads it.

    ``key=value`` pairs separated by whitespace; a value may be in double or
    single quotes; a backslash escapes the next character everywhere.  Only
    used to find ``socket=`` in a listing, so a malformed rest is ignored.
    """
    out: dict[str, str] = {}
    i, n = 0, len(argument)
    while i < n:
        while i < n and argument[i].isspace():
            i += 1
        start = i
        while i < n and argument[i] != "=" and not argument[i].isspace():
            i += 1
        key = argument[start:i]
        if i >= n or argument[i] != "=":
            continue
        i += 1
        quote = argument[i] if i < n and argument[i] in "\"'" else None
        if quote:
            i += 1
        value = []
        while i < n:
            c = argument[i]
            if c == "\\" and i + 1 < n:
                value.append(argument[i + 1])
                i += 2
                continue
            if (quote and c == quote) or (not quote and c.isspace()):
                i += 1
                break
            value.append(c)
            i += 1
        if key:
            out[key] = "".join(value)
    return out


def modules_with_socket(listing: bytes, socket: str) -> list[int]:
    """Indexes of our modules in ``pactl list short modules`` output.

    Lines are ``INDEX\\tNAME\\tARGUMENT\\t...``; a module counts when it is
    ``module-native-protocol-unix`` and its ``socket=`` is exactly ``socket``.
    """
    found = []
    for line in listing.decode(errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or fields[1] != MODULE or not fields[0].isdigit():
            continue
        if parse_modargs(fields[2]).get("socket") == socket:
            found.append(int(fields[0]))
    return found


def _last_line(err: bytes) -> str:
    lines = err.decode(errors="replace").strip().splitlines()
    return lines[-1][:200] if lines else "no message"


# --- the undo record -------------------------------------------------------------------


def _check_record(rec: dict[str, Any], ctx: _journal.Context) -> None:
    """Refuse a record that does not name this instance's own socket.

    The journal lies in a directory the user owns but treats as hostile, so a
    record may only make us unload a module whose socket is
    ``<.../ID/pulse/native>`` with this instance's random id, on a server
    named by a plain absolute socket path.
    """
    server, socket = rec["server"], rec["socket"]
    for what, path in (("server", server), ("socket", socket)):
        problem = _path_problem(path)
        if problem or os.path.normpath(path) != path:
            raise _journal.JournalError(
                f"refused: pulse {what} {path[:120]!r} {problem or 'is not normal'}"
            )
    if not socket.endswith(f"/{ctx.instance_id}/{SOCKET}"):
        raise _journal.JournalError(
            f"refused: pulse socket {socket[:120]!r} is not this instance's"
        )


def _revert_record(rec: dict[str, Any], ctx: _journal.Context) -> None:
    server, socket = rec["server"], rec["socket"]
    try:
        if not host.pulse_probe(server):
            return  # the server is gone, and its modules with it
        status, out, err = host.pactl(server, ["list", "short", "modules"])
        if status:
            raise _journal.JournalError(
                f"pulse: cannot list modules on {server}: {_last_line(err)}"
            )
        for index in modules_with_socket(out, socket):
            status, _, err = host.pactl(server, ["unload-module", str(index)])
            if status:
                # "No such entity": unloaded meanwhile (the server or a second gc): success.
                _, out, _ = host.pactl(server, ["list", "short", "modules"])
                if index in modules_with_socket(out, socket):
                    raise _journal.JournalError(
                        f"pulse: cannot unload module {index} on {server}: {_last_line(err)}"
                    )
    except host.HostError as e:
        raise _journal.JournalError(f"pulse: {e}") from None


_journal.register(
    _journal.Kind(KIND, {"server": str, "socket": str}, _check_record, _revert_record)
)


# --- the enablement --------------------------------------------------------------------


def warn(line: str) -> None:
    """One warning line on stderr: a fallback the user did not ask for is never silent."""
    print(f"hakurei: warning: {line}", file=sys.stderr, flush=True)


class Pulse:
    """The PulseAudio enablement (config ``enablements.pulse``, mode ``pulse_socket``)."""

    name = "pulse"

    def __init__(self) -> None:
        self._server: str | None = None

    def check(self, session: Session) -> None:
        mode = session.config.pulse_socket
        if mode not in ("instance", "shared"):
            raise EnableError(f"pulse: pulse_socket {mode!r} is not instance or shared")
        server = server_path(session.host_env)
        try:
            alive = host.pulse_probe(server)
        except host.HostError as e:
            raise EnableError(f"pulse: {e}") from None
        if not alive:
            raise EnableError(
                f"pulse: no PulseAudio server at {server} "
                "(is pulseaudio or pipewire-pulse running?)"
            )
        self._server = server

    async def prepare(self, session: Session) -> Grant:
        if self._server is None:
            self.check(session)
        assert self._server is not None
        server = self._server
        grant = Grant()
        inside = f"{session.runtime}/pulse"
        source = server
        if session.config.pulse_socket == "instance":
            own, why = await self._load(session, server)
            if own is not None:
                source = own
                grant.notes.append(f"pulse: own socket {own} on {server}, unloaded at exit")
            else:
                line = f"pulse: cannot load a socket of the app's own ({why}): it gets the main one"
                warn(line)
                grant.notes.append(f"{line}, with no revocation")
        else:
            grant.notes.append(f"pulse: the main socket {server} (shared, no revocation)")
        from ..ops import Bind

        grant.ops.append(Bind(source, f"{inside}/native"))
        grant.env["PULSE_SERVER"] = f"unix:{inside}/native"
        cookie = cookie_path(session.host_env)
        if cookie is not None:
            grant.ops.append(Bind(cookie, f"{inside}/cookie"))
            grant.env["PULSE_COOKIE"] = f"{inside}/cookie"
            grant.notes.append(f"pulse: cookie {cookie}, read-only")
        return grant

    async def _load(self, session: Session, server: str) -> tuple[str | None, str]:
        """Load the instance's module: (its socket, "") or (None, why not)."""
        import trio

        socket = os.path.normpath(f"{session.instance_dir}/{SOCKET}")  # as revert checks it
        problem = _path_problem(socket)
        if problem:
            return None, f"the path {socket[:120]!r} {problem}"
        session.journal.record("remove", path=DIR)
        try:
            host.pulse_make_dir(session.instance_dir_fd, DIR)
        except OSError as e:
            return (
                None,
                f"cannot make {DIR}/ in the instance directory: {os.strerror(e.errno or 0)}",
            )
        session.journal.record(KIND, server=server, socket=socket)
        args = ["load-module", MODULE, module_argument(socket)]
        try:
            status, _, err = await trio.to_thread.run_sync(
                host.pactl, server, args, session.host_env
            )
        except host.HostError as e:
            return None, str(e)
        if status:
            return None, f"pactl load-module: {_last_line(err)}"
        session.log(f"pulse: loaded {MODULE} {module_argument(socket)} on {server}")
        return socket, ""
