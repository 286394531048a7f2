"""Bind op (STUB: to be implemented)."""

from __future__ import annotations

from .base import ABS, INT, Op, State

BIND_OPTIONAL = 1
BIND_WRITABLE = 2
BIND_DEVICE = 4
BIND_ENSURE = 8


class Bind(Op):
    TAG = "bind"
    PREFIX = "mounting"
    FIELDS = (("source", ABS), ("target", ABS), ("flags", INT),)

    __slots__ = ("flags", "source", "target",)

    def __init__(self, source: str, target: str, flags: int = 0) -> None:
        self.source = source
        self.target = target
        self.flags = flags
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("bind")
