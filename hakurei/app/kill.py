"""``hakurei kill``: a signal to a live instance's app, and never to anyone else.

The app is named in its instance entry by pid *and* start time (field 22 of
``/proc/PID/stat``).  A pid alone could by now be someone else's process:
the app may have exited and its pid been reused while its monitor is still
winding down.  So the pid is first pinned with ``pidfd_open`` (from then on
the fd names that one process, whatever happens to the number), its start
time is then compared with the entry's, and only a match is signalled,
through the pidfd.  The process the launcher names is its container's shim
(the app is started cold, so the shim is the launcher's own child), which
relays SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP and SIGCONT to init, which
forwards them to the program (init.py); SIGKILL, or any signal that ends the
shim, ends the whole container at once (init's parent-death signal).
"""

from __future__ import annotations

import os
import signal

from ..errors import q
from .instances import InstanceError, Proc
from .journal import starttime


def parse_signal(text: str) -> int:
    """A signal by name (``TERM``, ``SIGTERM``, ``term``) or number (``15``).

    Anything that is not a real signal (0 included: it would only probe) is
    a one-line ``InstanceError``, exit 125.
    """
    if text.isdecimal() and len(text) <= 3:
        number = int(text)
    else:
        name = text.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        member = signal.Signals.__members__.get(name)
        if member is None or name in ("SIG_DFL", "SIG_IGN"):
            raise InstanceError(f"kill: unknown signal {q(text)} (a name like TERM, or a number)")
        number = member.value
    if number == 0 or number not in signal.valid_signals():
        raise InstanceError(f"kill: {q(text)} is not a signal number")
    return number


def send(app: Proc, sig: int, what: str) -> None:
    """Signal ``app`` if it is still the process the entry names; ``InstanceError`` if not."""
    try:
        pidfd = os.pidfd_open(app.pid)
    except ProcessLookupError:
        raise InstanceError(f"{what}: its app (pid {app.pid}) has already exited") from None
    try:
        # After pidfd_open: the fd pins the process, so this check cannot go stale.
        if starttime(app.pid) != app.starttime:
            raise InstanceError(
                f"{what}: refusing to signal pid {app.pid}: it is not the instance's app "
                "any more (its start time differs)"
            )
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            raise InstanceError(f"{what}: its app (pid {app.pid}) has already exited") from None
        except PermissionError:
            raise InstanceError(f"{what}: not allowed to signal pid {app.pid}") from None
    finally:
        os.close(pidfd)
