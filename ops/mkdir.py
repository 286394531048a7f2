"""Mkdir op (STUB: to be implemented)."""

from __future__ import annotations

from .base import ABS, INT, Op, State


class Mkdir(Op):
    TAG = "mkdir"
    PREFIX = "creating"
    FIELDS = (("path", ABS), ("perm", INT),)

    __slots__ = ("path", "perm",)

    def __init__(self, path: str, perm: int = 0o755) -> None:
        self.path = path
        self.perm = perm
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("mkdir")
