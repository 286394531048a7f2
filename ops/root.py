"""AutoRoot op (STUB: to be implemented)."""

from __future__ import annotations

from .base import ABS, INT, Op, State


class AutoRoot(Op):
    TAG = "autoroot"
    PREFIX = "setting up"
    FIELDS = (("host", ABS), ("flags", INT),)

    __slots__ = ("flags", "host",)

    def __init__(self, host: str, flags: int = 0) -> None:
        self.host = host
        self.flags = flags
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("autoroot")
