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


# --- D-Bus (dbus.py) ---------------------------------------------------------------------
