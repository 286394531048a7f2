"""Hold a lock on a file in the container while it lives (bubblewrap ``--lock-file``).

Init opens ``path`` inside the new root (resolved there; it must exist) and
takes a whole-file fcntl read lock on it, as bubblewrap's PID 1 does, and
keeps the fd until it exits: a host process asking for a write lock on the
same file (``F_SETLK``/``F_WRLCK``) is refused while the container lives and
granted once it is gone, however init ended.  The fd is ``O_CLOEXEC``, so the
program never has it.  The lock is init's (POSIX locks belong to a process),
so the program cannot drop it by closing anything.

Apply this op after every op that could mount over ``path`` (the bwrap front
end puts lock ops last): the lock is on the file the path names when it runs.
"""

from __future__ import annotations

import os

from ..errors import PathError
from .base import DEST, SYSROOT, Op, State, q, register


@register
class Lock(Op):
    TAG = "lock"
    PREFIX = "locking"
    FIELDS = (("path", DEST),)

    __slots__ = ("fd", "path")

    def __init__(self, path: str) -> None:
        self._init_derived()
        self.path = path
        self.validate()

    def _init_derived(self) -> None:
        #: init's open fd of the locked file, -1 until apply; never closed by us
        self.fd = -1

    def apply(self, st: State) -> None:
        k = st.k
        # O_NONBLOCK: a FIFO must not hang setup; O_NOCTTY: a terminal is never init's.
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY
        try:
            fd = k.open_in(SYSROOT, self.path, flags)
        except OSError as e:
            raise PathError("open lock file", self.path, e.errno or 0) from None
        try:
            k.lock_shared(fd)
        except OSError as e:
            k.close(fd)
            raise PathError("lock", self.path, e.errno or 0) from None
        self.fd = fd  # held, by init, until it exits

    def __str__(self) -> str:
        return f"file {q(self.path)}"
