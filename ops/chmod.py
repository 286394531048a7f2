"""Change the mode of a path in the container (bubblewrap's ``--chmod OCTAL PATH``).

The path is resolved inside the new root (a link is followed, but only
within it) to an ``O_PATH`` fd, and the mode is set through that fd's
``/proc/self/fd`` magic link: ``fchmod`` refuses an ``O_PATH`` fd, and
opening the file for real could block on a FIFO or touch a device.  So the
file changed is exactly the one resolved, never a name looked up again.
"""

from __future__ import annotations

import os

from ..errors import OpError, PathError
from .base import DEST, HOST_PROC_SELF, INT, SYSROOT, Op, State, q, register


@register
class Chmod(Op):
    TAG = "chmod"
    PREFIX = "changing"
    FIELDS = (("path", DEST), ("perm", INT))

    __slots__ = ("path", "perm")

    def __init__(self, path: str, perm: int) -> None:
        self.path = path
        self.perm = perm
        self.validate()

    def check(self) -> None:
        if not 0 <= self.perm <= 0o7777:
            raise OpError(f"chmod: perm {self.perm:#o} out of range")

    def apply(self, st: State) -> None:
        k = st.k
        what = f"chmod 0{self.perm:o}"
        try:
            fd = k.open_in(SYSROOT, self.path, os.O_PATH)
        except OSError as e:
            raise PathError(what, self.path, e.errno or 0) from None
        try:
            k.chmod(f"{HOST_PROC_SELF}/fd/{fd}", self.perm)
        except OSError as e:
            raise PathError(what, self.path, e.errno or 0) from None
        finally:
            k.close(fd)

    def __str__(self) -> str:
        return f"mode of {q(self.path)} to 0{self.perm:o}"
