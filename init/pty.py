"""Init's side of the program's terminal (issue 11 §1, docs/design.md "The terminal").

When the CLI runs in a terminal it asks for a pseudo-terminal of the
container's own: init opens ``/dev/ptmx`` *inside* the container (the private
devpts instance the ``--dev`` op mounts), so ``tty``, ``ttyname`` and
``/dev/pts`` agree inside, and passes the master back to the CLI over a unix
socket (``SCM_RIGHTS``).  The program never holds anything but the slave: it
cannot reach, inject into (``TIOCSTI``) or reconfigure the user's terminal.

The slave becomes the program's controlling terminal without a helper
process: ``posix_spawn`` runs ``setsid`` before its file actions, and a
session leader without a controlling terminal that opens a tty without
``O_NOCTTY`` acquires it.  So the spawn opens the slave's path onto fd 0 and
duplicates it to those of 1 and 2 that were terminals in the CLI; nothing
new is imported into init.

Only those, as ``sudo`` (use_pty) does: a pty turns ``\n`` into ``\r\n`` and
merges what goes through it, so ``hakurei exec -- cmd > log`` from a terminal
gives the program the slave on 0 and 2 but the log file itself on 1,
byte-exact.  The CLI sends which of its fds 0-2 are terminals as a mask
(bit ``1 << fd``); init passes the others through as it does without a pty.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .kernel import Kernel

#: The container's pty multiplexer (a link to pts/ptmx under ``--dev``).
PTMX = "/dev/ptmx"


def allocate(k: Kernel, sock: int, rows: int, cols: int) -> tuple[str, int]:
    """Open a pty in the container, send its master over ``sock``; (slave path, held slave).

    Init holds the slave open (without making it its own terminal) until the
    program has opened it: a master whose slave was never opened reads as
    hung up, and the CLI must not mistake that for the program's end.  The
    window size is set before the program can ask for it.
    """
    master, n = k.pty_master(PTMX)
    try:
        path = f"/dev/pts/{n}"
        held = k.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        if rows and cols:
            k.set_winsize(master, rows, cols)
        k.send_fd(sock, master)
    finally:
        k.close(master)  # the CLI has its own copy now
        k.close(sock)
    return path, held


def slave_fds(mask: int) -> list[int]:
    """Which of fds 0-2 get the slave: those set in ``mask``, all three without fd 0.

    The slave must be opened onto fd 0 for it to become the controlling
    terminal of a program reading it; the mask lacks fd 0 only with ``--pty``
    and a stdin that is no terminal, where the program gets the slave on all
    three (its input then comes through the CLI's relay).
    """
    if not mask & 1:
        return [0, 1, 2]
    return [fd for fd in (0, 1, 2) if mask & (1 << fd)]


def spawn_actions(
    path: str, mask: int
) -> list[tuple[int, int, str, int, int] | tuple[int, int, int]]:
    """File actions giving the program the slave as controlling terminal and the masked stdio.

    Opened without ``O_NOCTTY`` onto fd 0 (see the module docstring), then
    duplicated; the fds left out keep what init passes through.
    """
    fds = slave_fds(mask)
    actions: list[tuple[int, int, str, int, int] | tuple[int, int, int]] = [
        (os.POSIX_SPAWN_OPEN, fds[0], path, os.O_RDWR, 0)
    ]
    actions += [(os.POSIX_SPAWN_DUP2, fds[0], fd) for fd in fds[1:]]
    return actions
