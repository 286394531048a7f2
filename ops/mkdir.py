"""A directory in the container (reference §7.7).

Init runs with umask 0, so ``perm`` is exactly the mode of the directory
this creates (an existing one is left alone); missing parents get
``base.parent_perm(perm)``, as bubblewrap makes them.
"""

from __future__ import annotations

from ..errors import OpError
from .base import DEST, INT, SYSROOT, Op, State, parent_perm, q, register


@register
class Mkdir(Op):
    TAG = "mkdir"
    PREFIX = "creating"
    FIELDS = (("path", DEST), ("perm", INT))

    __slots__ = ("path", "perm")

    def __init__(self, path: str, perm: int = 0o755) -> None:
        self.path = path
        self.perm = perm
        self.validate()

    def check(self) -> None:
        if not 0 <= self.perm <= 0o7777:
            raise OpError(f"mkdir: perm {self.perm:#o} out of range")

    def apply(self, st: State) -> None:
        # perm is the leaf's alone, so --perms 1777 never lands on a parent;
        # missing parents get the parent perm without the group/other access
        # perm denies (bubblewrap's rule: --perms 0700 --dir /a/b makes /a 0700).
        pp = parent_perm(self.perm, st.parent_perm)
        st.k.close(st.k.mkdir_in(SYSROOT, self.path, self.perm, pp))

    def __str__(self) -> str:
        return f"directory {q(self.path)} perm {perm_text(self.perm)}"


def perm_text(perm: int) -> str:
    """Go ``FileMode.String`` for a permission: ``-rwxr-xr-x``.

    Go shows setuid, setgid and sticky as leading letters (``u``, ``g``,
    ``t``) instead of in the rwx triplets, and ``-`` when none is set.
    """
    lead = "".join(c for bit, c in ((0o4000, "u"), (0o2000, "g"), (0o1000, "t")) if perm & bit)
    rwx = "".join(c if perm & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return (lead or "-") + rwx
