"""Dev op (STUB: to be implemented)."""

from __future__ import annotations

from .base import ABS, BOOL, Op, State


class Dev(Op):
    TAG = "dev"
    PREFIX = "mounting"
    FIELDS = (("target", ABS), ("mqueue", BOOL), ("write", BOOL),)

    __slots__ = ("mqueue", "target", "write",)

    def __init__(self, target: str, mqueue: bool = False, write: bool = False) -> None:
        self.target = target
        self.mqueue = mqueue
        self.write = write
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("dev")
