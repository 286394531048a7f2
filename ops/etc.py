"""AutoEtc op: /etc as relative symlinks into a bound host /etc (reference §7.9).

``Ops.etc(host, prefix)`` binds the host directory read-only at
``/etc/.host/<prefix>`` and then appends this op, which fills ``/etc`` with one
symlink per entry.  The container sees the host's configuration, yet the
caller can still place its own files (``passwd``, ``group``) or bind over any
single entry, which a bind of the whole of /etc would not allow.
"""

from __future__ import annotations

import os

from ..errors import OpError, show
from .base import STR, SYSROOT, Op, State, register

#: entries never linked: the bind itself, and the files a caller places for the container
_SKIP = frozenset((".host", "passwd", "group"))


@register
class AutoEtc(Op):
    TAG = "autoetc"
    PREFIX = "setting up"
    FIELDS = (("prefix", STR),)

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.validate()

    def check(self) -> None:
        # The prefix is one name under /etc/.host; a slash or a dot-name
        # would point the links (and the bind the builder pairs with this op)
        # somewhere else, so it is refused before anything is mounted.
        if self.prefix in ("", ".", "..") or "/" in self.prefix:
            raise OpError(f"{self.TAG}: prefix {self.prefix!r} is not a single name")

    def apply(self, st: State) -> None:
        st.once("autoetc")
        k = st.k
        rel = f".host/{self.prefix}"
        etc = k.mkdir_in(SYSROOT, "/etc", 0o755, 0o755)
        try:
            # This reads the bind an earlier op made, so the bind must precede this op.
            host = k.open_in(SYSROOT, f"/etc/{rel}", os.O_RDONLY | os.O_DIRECTORY)
            try:
                names = k.listdir_fd(host)
            finally:
                k.close(host)
            for name in names:
                if name in _SKIP:
                    continue
                if name == "mtab":
                    k.symlinkat("/proc/mounts", etc, name)
                else:
                    # Relative, so the link means the same in the container
                    # whatever the entry is (reference §6.5).
                    k.symlinkat(f"{rel}/{name}", etc, name)
        finally:
            k.close(etc)

    def __str__(self) -> str:
        return f"auto etc {show(self.prefix)}"
