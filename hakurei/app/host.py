"""The launcher's one seam to the host: helper programs, X and PulseAudio requests, files.

Enablements reach the host only through this module (unit tests replace its
functions with recording fakes and replay them).  Everything here is
synchronous, because the journal's revert (run by ``gc`` in a plain process)
uses the same calls; async callers wrap a call that may block in
``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence


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
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            close_fds=True,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise HostError(f"{argv[0]}: not found (is it installed?)") from None
    except subprocess.TimeoutExpired:
        raise HostError(f"{argv[0]}: no answer in {timeout:g} s") from None
    except OSError as e:
        raise HostError(f"{argv[0]}: {os.strerror(e.errno or 0)}") from None
    return done.returncode, done.stdout, done.stderr


# --- X11 (x11.py) ------------------------------------------------------------------------


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
