"""AutoRoot op: mirror a directory's top level into ``/`` with binds (reference §7.10).

Used to run a program inside another root filesystem (an image, or the host's
own ``/``) while the container still gets its private /proc, /dev, /tmp and
/etc: those names, and /mnt, are never bound, and the caller adds their own.
The entries are listed once, in early, on the host; each becomes an ordinary
Bind op, so a link such as ``/bin -> usr/bin`` is resolved and bound as the
directory it names.
"""

from __future__ import annotations

import posixpath

from .base import ABS, INT, Op, State, q
from .bind import Bind

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
        #: one Bind per accepted entry, already through its early step
        self._resolved: list[Bind] = []

    def check(self) -> None:
        # The flags are Bind flags; let Bind judge them (Optional with Ensure)
        # now rather than fail in the middle of early.
        Bind(self.host, "/", self.flags)

    def early(self, st: State) -> None:
        self._init_derived()
        resolved: list[Bind] = []
        for name in st.k.listdir(self.host):
            if not is_auto_root_bindable(st, name):
                continue
            op = Bind(posixpath.join(self.host, name), "/" + name, self.flags)
            op.early(st)
            resolved.append(op)
        self._resolved = resolved

    def apply(self, st: State) -> None:
        st.once("autoroot")
        # Each Bind prints its own "mounting ..." line in its apply.
        for op in self._resolved:
            op.apply(st)

    def __str__(self) -> str:
        return f"auto root {q(self.host)} flags {self.flags:#x}"
