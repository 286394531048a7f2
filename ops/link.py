"""Link op (STUB: to be implemented)."""

from __future__ import annotations

from .base import ABS, BOOL, STR, Op, State


class Link(Op):
    TAG = "symlink"
    PREFIX = "creating"
    FIELDS = (("target", ABS), ("linkname", STR), ("dereference", BOOL),)

    __slots__ = ("dereference", "linkname", "target",)

    def __init__(self, target: str, linkname: str, dereference: bool = False) -> None:
        self.target = target
        self.linkname = linkname
        self.dereference = dereference
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("symlink")
