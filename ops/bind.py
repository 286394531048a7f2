"""Bind a host path into the container (reference §7.1).

Everything bound ends up nosuid and recursive; read-only and nodev unless the
caller asks otherwise, so a bind is safe by default.
"""

from __future__ import annotations

import stat

from ..errors import AbsoluteError, OpError, OpStateError
from ..std import (
    BIND_DEVICE,
    BIND_ENSURE,
    BIND_OPTIONAL,
    BIND_WRITABLE,
    MS_NODEV,
    MS_RDONLY,
    MS_REC,
)
from ._mount import bind_onto
from .base import ABS, DEST, INT, SYSROOT, Op, State, is_abs, q, register, to_host

__all__ = ["BIND_DEVICE", "BIND_ENSURE", "BIND_OPTIONAL", "BIND_WRITABLE", "Bind"]

_ALL_FLAGS = BIND_OPTIONAL | BIND_WRITABLE | BIND_DEVICE | BIND_ENSURE


@register
class Bind(Op):
    TAG = "bind"
    PREFIX = ""  # apply prints its own line, with the resolved source
    FIELDS = (("source", ABS), ("target", DEST), ("flags", INT))

    __slots__ = ("flags", "source", "source_final", "target")

    def __init__(self, source: str, target: str, flags: int = 0) -> None:
        self._init_derived()
        self.source = source
        self.target = target
        self.flags = flags
        self.validate()

    def _init_derived(self) -> None:
        #: the host source with every symlink resolved; None until early, and
        #: None after it when an optional source is missing (the op is skipped)
        self.source_final: str | None = None

    def check(self) -> None:
        # Unknown bits are most likely MS_* constants passed by mistake.
        if self.flags & ~_ALL_FLAGS:
            raise OpError(f"bind: unknown flags {self.flags:#x}")
        if self.flags & BIND_OPTIONAL and self.flags & BIND_ENSURE:
            raise OpError("bind: flags optional and ensure exclude each other")

    def early(self, st: State) -> None:
        k = st.k
        if self.flags & BIND_ENSURE:
            k.makedirs(self.source, 0o700)
        try:
            final = k.realpath(self.source)
        except FileNotFoundError:
            if self.flags & BIND_OPTIONAL:
                self.source_final = None
                return
            raise
        if not is_abs(final):
            raise AbsoluteError(final)
        self.source_final = final

    def apply(self, st: State) -> None:
        if self.source_final is None:
            if not self.flags & BIND_OPTIONAL:
                raise OpStateError("bind")
            return
        k = st.k
        source = to_host(self.source_final)
        target = self.target
        # A missing mount point is 0755 (a file 0444), as bubblewrap 0.8 and 0.11
        # make it; missing parents get the parent perm (0755 by default).
        if stat.S_ISDIR(k.stat(source).st_mode):
            fd = k.mkdir_in(SYSROOT, target, 0o755, st.parent_perm)
        else:
            fd = k.file_in(SYSROOT, target, 0o444, st.parent_perm)
        flags = MS_REC
        if not self.flags & BIND_WRITABLE:
            flags |= MS_RDONLY
        if not self.flags & BIND_DEVICE:
            flags |= MS_NODEV
        if self.source_final == self.target:
            st.verbose(f"mounting {q(target)} flags {flags:#x}")
        else:
            st.verbose(f"mounting {q(source)} on {q(target)} flags {flags:#x}")
        try:
            bind_onto(st, source, fd, flags)
        finally:
            k.close(fd)

    def __str__(self) -> str:
        if self.source == self.target:
            return f"{q(self.source)} flags {self.flags:#x}"
        return f"{q(self.source)} on {q(self.target)} flags {self.flags:#x}"
