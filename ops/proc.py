"""A private procfs for the container's pid namespace (reference §7.2).

It must be mounted while the host's full /proc is still visible (the kernel
refuses a new proc otherwise), which the apply phase guarantees.
"""

from __future__ import annotations

from ..init.kernel import MS_NODEV, MS_NOEXEC, MS_NOSUID
from .base import ABS, Op, State, q, to_sysroot


class Proc(Op):
    TAG = "proc"
    PREFIX = "mounting"
    FIELDS = (("target", ABS),)

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target
        self.validate()

    def apply(self, st: State) -> None:
        target = to_sysroot(self.target)
        st.k.makedirs(target, st.parent_perm)
        st.k.mount("proc", target, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, "")

    def __str__(self) -> str:
        return f"proc on {q(self.target)}"
