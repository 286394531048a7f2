"""A symlink in the container (reference §7.6, HEAD field names).

``target`` is where the link is created; ``linkname`` is its contents,
uninterpreted, unless ``dereference`` is set: then ``linkname`` names a host
symlink whose contents (one level only) become the link's contents.
"""

from __future__ import annotations

from ..errors import AbsoluteError, OpError, OpStateError
from .base import BOOL, DEST, STR, SYSROOT, Op, State, is_abs, q, register


@register
class Link(Op):
    TAG = "symlink"
    PREFIX = "creating"
    FIELDS = (("target", DEST), ("linkname", STR), ("dereference", BOOL))

    __slots__ = ("contents", "dereference", "linkname", "target")

    def __init__(self, target: str, linkname: str, dereference: bool = False) -> None:
        self._init_derived()
        self.target = target
        self.linkname = linkname
        self.dereference = dereference
        self.validate()

    def _init_derived(self) -> None:
        #: the host link's contents once early has read it (dereference only);
        #: kept apart from ``linkname`` so early never changes a wire field
        self.contents: str | None = None

    def check(self) -> None:
        if not self.linkname:
            raise OpError("symlink: linkname must not be empty")
        if self.dereference and not is_abs(self.linkname):
            raise OpError(f"symlink: {AbsoluteError(self.linkname)}")

    def early(self, st: State) -> None:
        if not self.dereference:
            return
        if not is_abs(self.linkname):
            raise AbsoluteError(self.linkname)
        self.contents = st.k.readlink(self.linkname)

    def apply(self, st: State) -> None:
        if not self.dereference:
            contents = self.linkname
        elif self.contents is None:
            raise OpStateError("symlink")
        else:
            contents = self.contents
        # An identical link already there is fine; anything else existing is EEXIST.
        st.k.symlink_in(SYSROOT, contents, self.target, st.parent_perm)

    def __str__(self) -> str:
        return f"symlink on {q(self.target)} linkname {q(self.linkname)}"
