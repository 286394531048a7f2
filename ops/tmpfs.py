"""A tmpfs at a container path (reference §7.5).

``fsname`` is the mount source shown in mountinfo: ``ephemeral`` for a
writable scratch tmpfs, ``readonly`` for an empty read-only one.
"""

from __future__ import annotations

from ..errors import OpError, TmpfsSizeError
from ..std import MS_NODEV, MS_NOSUID
from ._mount import mount_tmpfs
from .base import DEST, INT, STR, Op, State, q, register

#: Go's ``MaxUint >> 1``: the largest size the reference accepts
MAX_SIZE = (1 << 63) - 1


@register
class Tmpfs(Op):
    TAG = "tmpfs"
    PREFIX = "mounting"
    FIELDS = (
        ("fsname", STR),
        ("target", DEST),
        ("flags", INT),
        ("size", INT),
        ("perm", INT),
    )

    __slots__ = ("flags", "fsname", "perm", "size", "target")

    def __init__(
        self,
        target: str,
        size: int = 0,
        perm: int = 0o755,
        fsname: str = "ephemeral",
        flags: int = MS_NOSUID | MS_NODEV,
    ) -> None:
        self.fsname = fsname
        self.target = target
        self.flags = flags
        self.size = size
        self.perm = perm
        self.validate()

    def check(self) -> None:
        if not self.fsname:
            raise OpError("tmpfs: fsname must not be empty")
        if self.flags < 0:
            raise OpError(f"tmpfs: flags {self.flags} out of range")
        if not 0 <= self.perm <= 0o7777:
            raise OpError(f"tmpfs: perm {self.perm:#o} out of range")
        # Caught here already so a bad size fails before the container starts;
        # apply repeats the check for ops that bypassed validation.
        _check_size(self.size)

    def apply(self, st: State) -> None:
        _check_size(self.size)
        mount_tmpfs(st, self.fsname, self.target, self.flags, self.size, self.perm)

    def __str__(self) -> str:
        return f"tmpfs on {q(self.target)} size {self.size}"


def _check_size(size: int) -> None:
    if size < 0 or size > MAX_SIZE:
        raise TmpfsSizeError(size)
