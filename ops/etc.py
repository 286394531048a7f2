"""AutoEtc op: /etc as relative symlinks into a bound host /etc (reference §7.9).

``Ops.etc(host, prefix)`` binds the host directory read-only at
``/etc/.host/<prefix>`` and then appends this op, which fills ``/etc`` with one
symlink per entry.  The container sees the host's configuration, yet the
caller can still place its own files (``passwd``, ``group``) or bind over any
single entry, which a bind of the whole of /etc would not allow.
"""

from __future__ import annotations

from ..errors import OpError
from .base import STR, Op, State, to_sysroot

#: entries never linked: the bind itself, and the files a caller places for the container
_SKIP = frozenset((".host", "passwd", "group"))


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
        target = to_sysroot("/etc")
        rel = f".host/{self.prefix}"
        k.makedirs(target, 0o755)
        # This reads the bind an earlier op made, so the bind must precede this op.
        for name in k.listdir(to_sysroot(f"/etc/{rel}")):
            if name in _SKIP:
                continue
            if name == "mtab":
                k.symlink("/proc/mounts", f"{target}/{name}")
            else:
                # Relative, because remount resolves symlinks against init's
                # intermediate root, where an absolute /etc/... link would
                # point at the wrong tree (reference §6.5).
                k.symlink(f"{rel}/{name}", f"{target}/{name}")

    def __str__(self) -> str:
        return f"auto etc {self.prefix}"
