"""AutoEtc op (STUB: to be implemented)."""

from __future__ import annotations

from .base import STR, Op, State


class AutoEtc(Op):
    TAG = "autoetc"
    PREFIX = "setting up"
    FIELDS = (("prefix", STR),)

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("autoetc")
