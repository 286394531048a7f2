"""Overlay op (STUB: to be implemented)."""

from __future__ import annotations

from .base import ABS, ABS_LIST, ABS_OPT, Op, State


class Overlay(Op):
    TAG = "overlay"
    PREFIX = "mounting"
    FIELDS = (("target", ABS), ("lower", ABS_LIST), ("upper", ABS_OPT), ("work", ABS_OPT),)

    __slots__ = ("lower", "target", "upper", "work",)

    def __init__(self, target: str, lower: list[str], upper: str | None = None, work: str | None = None) -> None:
        self.target = target
        self.lower = lower
        self.upper = upper
        self.work = work
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("overlay")
