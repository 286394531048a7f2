"""A file with given contents bound into the container (reference §7.8, Go ``Place``).

The data goes to a private file in the intermediate root, which gets mode
``perm`` and is bound onto the target (read-only unless ``writable``) and
then unlinked: the bind keeps the inode, and nothing of it is left in the
intermediate root the container never sees.  bubblewrap's ``--bind-data``
and ``--ro-bind-data`` are this op (their default mode is 0600, mkstemp's);
``--file``, which writes into the tree itself, is ``ops/file.py``.
"""

from __future__ import annotations

import os

from ..errors import OpError
from ..std import MS_NODEV, MS_RDONLY
from ._mount import bind_onto
from .base import BOOL, BYTES, DEST, INT, SYSROOT, Op, State, parent_perm, q, register

#: Largest file a Place or File op carries (and ``hakurei exec --place`` reads): 16 MiB.
MAX_DATA = 16 << 20


@register
class Place(Op):
    TAG = "place"
    PREFIX = "placing"
    FIELDS = (("path", DEST), ("data", BYTES), ("perm", INT), ("writable", BOOL))

    __slots__ = ("data", "path", "perm", "writable")

    def __init__(self, path: str, data: bytes, perm: int = 0o600, writable: bool = False) -> None:
        self.path = path
        self.data = data
        self.perm = perm
        self.writable = writable
        self.validate()

    def check(self) -> None:
        check_data(self.TAG, self.data, self.perm)

    def apply(self, st: State) -> None:
        k = st.k
        tmp = st.tmpname("tmp.")
        # Init's umask is 0: the file is created with exactly ``perm``.
        fd = k.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, self.perm)
        try:
            try:
                write_all(st, fd, self.data)
            except BaseException:
                try:
                    k.close(fd)
                except OSError:
                    pass
                raise
            k.close(fd)
            target = k.file_in(SYSROOT, self.path, 0o444, parent_perm(self.perm, st.parent_perm))
            try:
                bind_onto(st, tmp, target, MS_NODEV if self.writable else MS_RDONLY | MS_NODEV)
            finally:
                k.close(target)
        except BaseException:
            # The original error matters more than a failed clean-up.
            try:
                k.remove(tmp)
            except OSError:
                pass
            raise
        k.remove(tmp)

    def __str__(self) -> str:
        """``tmpfile "/etc/x" (13 bytes)``, plus what differs from the read-only 0600 default."""
        extra = "" if self.perm == 0o600 else f", mode 0{self.perm:o}"
        if self.writable:
            extra += ", writable"
        return f"tmpfile {q(self.path)} ({len(self.data)} bytes{extra})"


def check_data(tag: str, data: bytes, perm: int) -> None:
    """At most ``MAX_DATA`` bytes and a mode in 0..07777.

    A placed file is configuration, and the whole setup record must fit the
    wire's limit (``params.MAX_BODY``).
    """
    if len(data) > MAX_DATA:
        raise OpError(f"{tag}: {len(data)} bytes exceed the {MAX_DATA}-byte limit")
    if not 0 <= perm <= 0o7777:
        raise OpError(f"{tag}: perm {perm:#o} out of range")


def write_all(st: State, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = st.k.write(fd, bytes(view))
        view = view[n:]
