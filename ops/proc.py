"""A private procfs for the container's pid namespace (reference §7.2).

It must be mounted while the host's full /proc is still visible (the kernel
refuses a new proc otherwise), which the apply phase guarantees.
"""

from __future__ import annotations

from ..std import MS_NODEV, MS_NOEXEC, MS_NOSUID
from ._mount import mount_on
from .base import DEST, SYSROOT, Op, State, q, register


@register
class Proc(Op):
    TAG = "proc"
    PREFIX = "mounting"
    FIELDS = (("target", DEST),)

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target
        self.validate()

    def apply(self, st: State) -> None:
        k = st.k
        fd = k.mkdir_in(SYSROOT, self.target, st.parent_perm, st.parent_perm)
        try:
            mount_on(st, fd, self.target, "proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, "")
        finally:
            k.close(fd)

    def __str__(self) -> str:
        return f"proc on {q(self.target)}"
