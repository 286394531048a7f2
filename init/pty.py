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
duplicates it to 1 and 2; nothing new is imported into init.
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


def spawn_actions(path: str) -> list[tuple[int, int, str, int, int] | tuple[int, int, int]]:
    """File actions giving the program the slave as stdio and controlling terminal."""
    return [
        (os.POSIX_SPAWN_OPEN, 0, path, os.O_RDWR, 0),
        (os.POSIX_SPAWN_DUP2, 0, 1),
        (os.POSIX_SPAWN_DUP2, 0, 2),
    ]
