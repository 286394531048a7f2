"""Add attributes to an existing mount in the container (reference §7.11).

Only MS_NODEV and MS_RDONLY take effect, plus an implicit nosuid; it recurses
into submounts only with MS_REC.  The typical use is ``Remount("/",
MS_RDONLY)`` as the last op.
"""

from __future__ import annotations

from ..errors import OpError
from ._mount import remount
from .base import DEST, INT, Op, State, q, register


@register
class Remount(Op):
    TAG = "remount"
    PREFIX = "remounting"
    FIELDS = (("target", DEST), ("flags", INT))

    __slots__ = ("flags", "target")

    def __init__(self, target: str, flags: int) -> None:
        self.target = target
        self.flags = flags
        self.validate()

    def check(self) -> None:
        if self.flags < 0:
            raise OpError(f"remount: flags {self.flags} out of range")

    def apply(self, st: State) -> None:
        remount(st, self.target, self.flags)

    def __str__(self) -> str:
        return f"{q(self.target)} flags {self.flags:#x}"
