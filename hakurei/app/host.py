"""The launcher's one seam to the host: helper programs, X and PulseAudio requests, files.

Enablements reach the host only through this module (unit tests replace its
functions with recording fakes and replay them).  Everything here is
synchronous, because the journal's revert (run by ``gc`` in a plain process)
uses the same calls; async callers wrap a call that may block in
``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
from collections.abc import Mapping, Sequence

from . import xauth

#: The signals a terminal or the launcher's own group may get, that a helper must not.
SHIELDED = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class HostError(Exception):
    """A host request failed; one line that says what and why."""


def command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes, bytes]:
    """Run a helper program to completion: (status, stdout, stderr); never raises on status.

    ``HostError`` if it cannot be started or exceeds ``timeout`` (it is then killed).
    """
    # Blocked in the calling thread, so in the child from its fork on: a signal sent to
    # our process group before the child has left it (process_group below) stays pending
    # and never ends the helper half-way.  The helper keeps them blocked: it is short-lived
    # and ``timeout`` ends it with SIGKILL.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, SHIELDED)
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            close_fds=True,
            stdin=None if input is not None else subprocess.DEVNULL,
            # A process group of its own: a terminal's Ctrl-C is for the app (the launcher
            # forwards it and reverts), never for a helper half-way through a host action
            # (a pactl killed mid load-module made a fallback; mid unload, a leftover).
            process_group=0,
        )
    except FileNotFoundError:
        raise HostError(f"{argv[0]}: not found (is it installed?)") from None
    except subprocess.TimeoutExpired:
        raise HostError(f"{argv[0]}: no answer in {timeout:g} s") from None
    except OSError as e:
        raise HostError(f"{argv[0]}: {os.strerror(e.errno or 0)}") from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return done.returncode, done.stdout, done.stderr


# --- X11 (x11.py) ------------------------------------------------------------------------

#: How long one exchange with an X server may take (a local server answers in milliseconds).
X11_TIMEOUT = 5.0


class X11Gone(HostError):
    """The X server is not there (no socket, or nobody listening): nothing to revoke."""


def x11_socket_path(display: int) -> str:
    """Where the X server of local display ``:display`` listens (the path, not the abstract one)."""
    return f"/tmp/.X11-unix/X{display}"


def x11_is_socket(path: str) -> bool:
    """Whether ``path`` is a unix socket itself (a symlink to one is not)."""
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def hostname() -> bytes:
    """This host's name as libxcb gives it to libXau (``gethostname``)."""
    return socket.gethostname().encode()


def x11_read_authority(path: str) -> bytes | None:
    """The user's Xauthority file, or None when there is none; ``HostError`` if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise HostError(f"cannot read {path}: {os.strerror(e.errno or 0)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HostError(f"{path} is not a regular file")
        if st.st_size > xauth.MAX_FILE:
            raise HostError(f"{path} is larger than {xauth.MAX_FILE} bytes: not an Xauthority file")
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)[: xauth.MAX_FILE]
    finally:
        os.close(fd)


def x11_write_private(dir_fd: int, name: str, data: bytes) -> None:
    """Create ``name`` in ``dir_fd`` (never an existing file, never through a symlink), 0600."""
    from .store import write_new

    write_new(dir_fd, name, data)


class _X11:
    """One connection to a local X server, speaking just the requests ``xauth`` encodes."""

    def __init__(self, display: int, cookie: bytes | None) -> None:
        self.display = display
        self.sequence = 0
        path = x11_socket_path(display)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(X11_TIMEOUT)
        try:
            try:
                self.sock.connect(path)
            except (FileNotFoundError, ConnectionRefusedError) as e:
                raise X11Gone(f"no X server on :{display} ({os.strerror(e.errno or 0)})") from None
            name = xauth.MIT_MAGIC_COOKIE if cookie is not None else b""
            self.sock.sendall(xauth.setup_request(name, cookie or b""))
            head = self._recv(8)
            rest = self._recv(xauth.setup_reply_length(head))
            refused = xauth.setup_refusal(head, rest)
            if refused is not None:
                raise HostError(f"the X server on :{display} refused us: {refused}")
        except OSError as e:
            self.sock.close()
            raise HostError(f"X server on :{display}: {e.strerror or e}") from None
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise HostError(f"the X server on :{self.display} closed the connection")
            buf += chunk
        return bytes(buf)

    def packet(self) -> bytes:
        """The next reply, error or event from the server, whole."""
        head = self._recv(32)
        return head + self._recv(xauth.packet_length(head))

    def request(self, data: bytes) -> int:
        """Send one request; its sequence number."""
        self.sock.sendall(data)
        self.sequence = (self.sequence + 1) & 0xFFFF
        return self.sequence

    def reply(self, sequence: int) -> tuple[bytes | None, int]:
        """The reply to request ``sequence`` (None, code if the server sent an error instead).

        Errors and events for earlier requests are skipped.
        """
        while True:
            packet = self.packet()
            kind, seq, code = xauth.packet_kind(packet)
            if seq != sequence:
                continue
            if kind == "reply":
                return packet, 0
            if kind == "error":
                return None, code

    def security(self) -> tuple[int, int] | None:
        """(major opcode, first error) of the SECURITY extension, None if the server lacks it."""
        reply, code = self.reply(self.request(xauth.query_extension(xauth.SECURITY)))
        if reply is None:
            raise HostError(f"the X server on :{self.display} failed QueryExtension (error {code})")
        present, major, first_error = xauth.query_extension_reply(reply)
        return (major, first_error) if present else None


def x11_has_security(display: int, cookie: bytes | None) -> bool:
    """Whether the X server on ``:display`` offers the SECURITY extension to us."""
    conn = _X11(display, cookie)
    try:
        return conn.security() is not None
    finally:
        conn.close()


def x11_hold(display: int, cookie: bytes) -> socket.socket:
    """A connection to ``:display`` made with ``cookie``, for the caller to keep open.

    While a client uses an authorization, the server does not start its
    timeout; the caller closes the socket (or dies) to let it run.
    """
    conn = _X11(display, cookie)
    conn.sock.settimeout(None)
    return conn.sock


def x11_generate(display: int, cookie: bytes | None, trust: int, timeout: int) -> tuple[int, bytes]:
    """Mint an authorization on ``:display`` through SECURITY: (authorization id, cookie)."""
    conn = _X11(display, cookie)
    try:
        ext = conn.security()
        if ext is None:
            raise HostError(f"the X server on :{display} has no SECURITY extension")
        seq = conn.request(xauth.generate_authorization(ext[0], trust, timeout))
        reply, code = conn.reply(seq)
        if reply is None:
            raise HostError(f"the X server on :{display} refused a new cookie (error {code})")
        try:
            return xauth.generate_authorization_reply(reply)
        except xauth.XauthError as e:
            raise HostError(str(e)) from None
    finally:
        conn.close()


def x11_revoke(display: int, cookie: bytes | None, auth_id: int) -> None:
    """Revoke authorization ``auth_id`` on ``:display``; an unknown id or no server is success."""
    try:
        conn = _X11(display, cookie)
    except X11Gone:
        return
    try:
        ext = conn.security()
        if ext is None:
            return  # a server without SECURITY holds no authorization of ours
        major, first_error = ext
        revoke = conn.request(xauth.revoke_authorization(major, auth_id))
        # Revoke has no reply: the reply to a request sent after it says it is done;
        # an error with its sequence number arrives before that reply.
        sync = conn.request(xauth.get_input_focus())
        while True:
            kind, seq, code = xauth.packet_kind(conn.packet())
            if kind == "error" and seq == revoke:
                if code != first_error + xauth.BAD_AUTHORIZATION:
                    raise HostError(f"the X server on :{display} refused to revoke (error {code})")
            elif seq == sync and kind in ("reply", "error"):
                return
    finally:
        conn.close()


# --- PulseAudio (pulse.py) ---------------------------------------------------------------

#: libpulse's own default connect timeout is 5 s; a local server answers in milliseconds.
PULSE_CONNECT_TIMEOUT = 5.0


def pulse_probe(path: str) -> bool:
    """Whether a PulseAudio server listens on the unix socket ``path``.

    False when nothing is there or nobody accepts (a stale socket of a server
    that died): for revert that means the server, and every module it had
    loaded, is gone.  ``HostError`` (one line) when ``path`` is something
    else than a socket or cannot be reached (permissions): the caller cannot
    tell whether the server lives.
    """
    import socket
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise HostError(f"{path}: {os.strerror(e.errno or 0)}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise HostError(f"{path} is not a socket")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.settimeout(PULSE_CONNECT_TIMEOUT)
        s.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    except TimeoutError:
        raise HostError(f"{path}: the server does not accept connections") from None
    except OSError as e:
        raise HostError(f"{path}: {os.strerror(e.errno or 0)}") from None
    finally:
        s.close()
    return True


def pactl(
    server: str, args: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[int, bytes, bytes]:
    """``pactl -s unix:SERVER ARGS`` in the C locale: (status, stdout, stderr).

    The server is always named, so libpulse never autospawns a daemon and
    never picks another one from ``PULSE_SERVER`` or ``client.conf``.
    """
    base = dict(os.environ if env is None else env)
    base["LC_ALL"] = "C"
    return command(["pactl", "-s", f"unix:{server}", *args], env=base)


def pulse_make_dir(dir_fd: int, name: str) -> None:
    """Create the 0700 directory the instance's PulseAudio socket goes in.

    module-native-protocol-unix binds its socket but does not create the
    directory around it.
    """
    os.mkdir(name, 0o700, dir_fd=dir_fd)


# --- D-Bus (dbus.py) ---------------------------------------------------------------------
