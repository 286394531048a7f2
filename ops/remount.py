"""Remount op (STUB: to be implemented)."""

from __future__ import annotations

from .base import ABS, INT, Op, State


class Remount(Op):
    TAG = "remount"
    PREFIX = "remounting"
    FIELDS = (("target", ABS), ("flags", INT),)

    __slots__ = ("flags", "target",)

    def __init__(self, target: str, flags: int) -> None:
        self.target = target
        self.flags = flags
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("remount")
