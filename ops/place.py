"""Place op (STUB: to be implemented)."""

from __future__ import annotations

from .base import ABS, BYTES, Op, State


class Place(Op):
    TAG = "place"
    PREFIX = "placing"
    FIELDS = (("path", ABS), ("data", BYTES),)

    __slots__ = ("data", "path",)

    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        self.data = data
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("place")
