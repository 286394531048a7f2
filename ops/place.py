"""Place a read-only file with given contents in the container (reference §7.8, Go ``Place``).

The data goes to a temporary file in the intermediate root, which is bound
read-only onto the target and then unlinked: the bind keeps the inode, and
nothing of it is left in the intermediate root the container never sees.
"""

from __future__ import annotations

import os

from ..errors import OpError
from ..std import MS_NODEV, MS_RDONLY
from ._mount import bind_onto
from .base import BYTES, DEST, SYSROOT, Op, State, q, register

#: Largest file a Place op carries (and ``hakurei exec --place`` reads): 16 MiB.
MAX_DATA = 16 << 20


@register
class Place(Op):
    TAG = "place"
    PREFIX = "placing"
    FIELDS = (("path", DEST), ("data", BYTES))

    __slots__ = ("data", "path")

    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        self.data = data
        self.validate()

    def check(self) -> None:
        """At most ``MAX_DATA`` bytes: a placed file is configuration, and the
        whole setup record must fit the wire's limit (``params.MAX_BODY``)."""
        if len(self.data) > MAX_DATA:
            raise OpError(f"place: {len(self.data)} bytes exceed the {MAX_DATA}-byte limit")

    def apply(self, st: State) -> None:
        k = st.k
        tmp = st.tmpname("tmp.")
        fd = k.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            try:
                _write_all(st, fd, self.data)
            except BaseException:
                try:
                    k.close(fd)
                except OSError:
                    pass
                raise
            k.close(fd)
            target = k.file_in(SYSROOT, self.path, 0o444, st.parent_perm)
            try:
                bind_onto(st, tmp, target, MS_RDONLY | MS_NODEV)
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
        return f"tmpfile {q(self.path)} ({len(self.data)} bytes)"


def _write_all(st: State, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = st.k.write(fd, bytes(view))
        view = view[n:]
