"""A regular file with given contents written into the container's tree (bubblewrap ``--file``).

Unlike ``Place`` nothing is mounted: the file is created in the directory
it belongs to (a tmpfs, or a writable bind, where the host sees it), with
mode ``perm`` (init's umask is 0; bubblewrap's default is 0666).  The
parent is resolved inside the new root; the name itself is opened with
``O_NOFOLLOW`` (a link there is refused, never followed) and
``O_NONBLOCK`` (a FIFO must not hang setup), and whatever was opened must
be a regular file before a byte is written.  An existing file is
truncated and keeps its mode, as ``creat(2)`` leaves it.
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import PathError
from .base import BYTES, DEST, INT, SYSROOT, Op, State, parent_perm, q, register
from .place import check_data, write_all


@register
class File(Op):
    TAG = "file"
    PREFIX = "writing"
    FIELDS = (("path", DEST), ("data", BYTES), ("perm", INT))

    __slots__ = ("data", "path", "perm")

    def __init__(self, path: str, data: bytes, perm: int = 0o666) -> None:
        self.path = path
        self.data = data
        self.perm = perm
        self.validate()

    def check(self) -> None:
        check_data(self.TAG, self.data, self.perm)

    def apply(self, st: State) -> None:
        k = st.k
        parent, name = self.path.rsplit("/", 1)
        if not name:
            raise PathError("create file", self.path, errno.EISDIR)
        pp = parent_perm(self.perm, st.parent_perm)
        pfd = k.mkdir_in(SYSROOT, parent or "/", pp, pp)
        try:
            flags = os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
            try:
                fd = k.openat(pfd, name, flags | os.O_NOCTTY, self.perm)
            except OSError as e:
                raise PathError("create file", self.path, e.errno or 0) from None
        finally:
            k.close(pfd)
        try:
            if not stat.S_ISREG(k.fstat(fd).st_mode):
                raise PathError("create file", self.path, errno.EEXIST)
            try:
                write_all(st, fd, self.data)
            except OSError as e:
                raise PathError("write file", self.path, e.errno or 0) from None
        finally:
            k.close(fd)

    def __str__(self) -> str:
        return f"file {q(self.path)} ({len(self.data)} bytes, 0{self.perm:o})"
