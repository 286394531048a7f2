"""A POSIX message queue filesystem at a container path (bubblewrap ``--mqueue``).

It shows the container's own IPC namespace's queues.  The Dev op mounts the
same filesystem at ``/dev/mqueue`` (``mqueue=True``); both go through
``_mount.mount_mqueue``.  A missing mount point is made 0755, as bubblewrap
makes it, with the setup's parent perm for its parents.
"""

from __future__ import annotations

from ._mount import mount_mqueue
from .base import DEST, SYSROOT, Op, State, q, register


@register
class Mqueue(Op):
    TAG = "mqueue"
    PREFIX = "mounting"
    FIELDS = (("target", DEST),)

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target
        self.validate()

    def apply(self, st: State) -> None:
        k = st.k
        fd = k.mkdir_in(SYSROOT, self.target, 0o755, st.parent_perm)
        try:
            mount_mqueue(st, fd, self.target)
        finally:
            k.close(fd)

    def __str__(self) -> str:
        return f"mqueue on {q(self.target)}"
