"""AutoRoot op: mirror a directory's top level into ``/`` with binds (reference §7.10).

Used to run a program inside another root filesystem (an image, or the host's
own ``/``) while the container still gets its private /proc, /dev, /tmp and
/etc: those names, and /mnt, are never bound, and the caller adds their own.
The entries are listed once, in early, on the host.  A directory or file
becomes an ordinary Bind op; a symlink becomes the same symlink in the
container (a Link op), so ``/bin -> usr/bin`` means the image's ``/usr/bin``
and ``hostroot -> /`` means the container's root: an image's contents are
not the user's words, and are never followed on the host.
"""

from __future__ import annotations

import posixpath
import stat

from .base import ABS, INT, Op, State, q, register
from .bind import Bind
from .link import Link

#: top-level names the container provides itself
_NOT_BOUND = frozenset(("proc", "dev", "tmp", "mnt", "etc"))


def is_auto_root_bindable(st: State, name: str) -> bool:
    """Whether AutoRoot binds the top-level entry ``name`` (Go ``IsAutoRootBindable``)."""
    if name in _NOT_BOUND:
        return False
    if not name:
        # Joining "" would bind the whole of host onto /; readdir never
        # returns it, so say so rather than guess.
        st.verbose("got unexpected root entry")
        return False
    return True


@register
class AutoRoot(Op):
    TAG = "autoroot"
    PREFIX = "setting up"
    FIELDS = (("host", ABS), ("flags", INT))

    __slots__ = ("_resolved", "flags", "host")

    def __init__(self, host: str, flags: int = 0) -> None:
        self.host = host
        self.flags = flags
        self._init_derived()
        self.validate()

    def _init_derived(self) -> None:
        #: one Bind (already through its early step) or Link per accepted entry
        self._resolved: list[Bind | Link] = []

    def check(self) -> None:
        # The flags are Bind flags; let Bind judge them (Optional with Ensure)
        # now rather than fail in the middle of early.
        Bind(self.host, "/", self.flags)

    def early(self, st: State) -> None:
        self._init_derived()
        resolved: list[Bind | Link] = []
        for name in st.k.listdir(self.host):
            if not is_auto_root_bindable(st, name):
                continue
            host = posixpath.join(self.host, name)
            if stat.S_ISLNK(st.k.lstat(host).st_mode):
                resolved.append(Link("/" + name, st.k.readlink(host)))
                continue
            op = Bind(host, "/" + name, self.flags)
            op.early(st)
            resolved.append(op)
        self._resolved = resolved

    def apply(self, st: State) -> None:
        st.once("autoroot")
        # Each Bind prints its own "mounting ..." line in its apply.
        for op in self._resolved:
            if isinstance(op, Link):
                st.verbose(f"{op.PREFIX} {op}")
            op.apply(st)

    def __str__(self) -> str:
        return f"auto root {q(self.host)} flags {self.flags:#x}"
