"""Proc op (STUB: to be implemented)."""

from __future__ import annotations

from .base import ABS, Op, State


class Proc(Op):
    TAG = "proc"
    PREFIX = "mounting"
    FIELDS = (("target", ABS),)

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("proc")
