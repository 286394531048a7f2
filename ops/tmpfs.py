"""Tmpfs op (STUB: to be implemented)."""

from __future__ import annotations

from ..init.kernel import MS_NODEV, MS_NOSUID
from .base import ABS, INT, STR, Op, State


class Tmpfs(Op):
    TAG = "tmpfs"
    PREFIX = "mounting"
    FIELDS = (("fsname", STR), ("target", ABS), ("flags", INT), ("size", INT), ("perm", INT),)

    __slots__ = ("flags", "fsname", "perm", "size", "target",)

    def __init__(self, target: str, size: int = 0, perm: int = 0o755, fsname: str = "ephemeral", flags: int = MS_NOSUID | MS_NODEV) -> None:
        self.fsname = fsname
        self.target = target
        self.flags = flags
        self.size = size
        self.perm = perm
        self.validate()

    def apply(self, st: State) -> None:
        raise NotImplementedError("tmpfs")
