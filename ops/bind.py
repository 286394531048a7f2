"""Bind a host path into the container (reference §7.1).

Everything bound ends up nosuid and recursive; read-only and nodev unless the
caller asks otherwise, so a bind is safe by default.

A source ``/proc/self/fd/N`` binds what init's fd N refers to (bubblewrap's
``--bind-fd``; the CLI keeps N open for init).  The kernel refuses to clone a
mount of another mount namespace (the fd was opened on the host's), so the
fd's current name (its magic link, which follows renames) is resolved again
in init's copy of the host tree, the result must be the very inode of the
fd (same device and inode, else the name was swapped and the bind fails),
and that verified fd is what is bound: no name is looked up after the check.
A directory that was removed has no name left to find, and fails.
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import AbsoluteError, OpError, OpStateError, PathError, SourceError
from ..std import (
    BIND_DEVICE,
    BIND_ENSURE,
    BIND_OPTIONAL,
    BIND_WRITABLE,
    MS_NODEV,
    MS_RDONLY,
    MS_REC,
)
from ._mount import bind_onto, bind_tree_onto
from .base import (
    ABS,
    DEST,
    HOST,
    HOST_PROC_SELF,
    INT,
    SYSROOT,
    Op,
    State,
    is_abs,
    q,
    register,
    to_host,
)

#: A bind source naming one of init's fds (bubblewrap ``--bind-fd``)
FD_SOURCE = "/proc/self/fd/"

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
        if self.flags & BIND_ENSURE and source_fd(self.source) is not None:
            raise OpError(f"bind: cannot ensure {q(self.source)}, an fd")

    def early(self, st: State) -> None:
        k = st.k
        fd = source_fd(self.source)
        if fd is not None:
            try:
                k.fstat(fd)
            except OSError as e:
                if self.flags & BIND_OPTIONAL:
                    self.source_final = None
                    return
                raise SourceError(self.source, e.errno or 0) from None
            self.source_final = self.source  # resolved in apply, by the fd
            return
        if self.flags & BIND_ENSURE:
            k.makedirs(self.source, 0o700)
        try:
            final = k.realpath(self.source)
        except OSError as e:
            if self.flags & BIND_OPTIONAL and isinstance(e, FileNotFoundError):
                self.source_final = None
                return
            raise SourceError(self.source, e.errno or 0) from None
        if not is_abs(final):
            raise AbsoluteError(final)
        self.source_final = final

    def apply(self, st: State) -> None:
        if self.source_final is None:
            if not self.flags & BIND_OPTIONAL:
                raise OpStateError("bind")
            return
        k = st.k
        fd = source_fd(self.source_final)
        if fd is not None:
            tree = self.open_fd_source(st, fd)
            try:
                self.bind(st, self.source, tree, stat.S_ISDIR(k.fstat(tree).st_mode))
            finally:
                k.close(tree)
            return
        source = to_host(self.source_final)
        self.bind(st, source, source, stat.S_ISDIR(k.stat(source).st_mode))

    def bind(self, st: State, name: str, source: str | int, is_dir: bool) -> None:
        """Make the mount point and bind ``source`` (a path, or a verified fd) onto it."""
        k = st.k
        target = self.target
        # A missing mount point is 0755 (a file 0444), as bubblewrap 0.8 and 0.11
        # make it; missing parents get the parent perm (0755 by default).
        if is_dir:
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
            st.verbose(f"mounting {q(name)} on {q(target)} flags {flags:#x}")
        try:
            if isinstance(source, int):
                bind_tree_onto(st, source, fd, flags)
            else:
                bind_onto(st, source, fd, flags)
        finally:
            k.close(fd)

    def open_fd_source(self, st: State, fd: int) -> int:
        """An O_PATH fd, in init's mount namespace, of exactly what init's ``fd`` refers to."""
        k = st.k
        try:
            want = k.fstat(fd)
            name = k.readlink(f"{HOST_PROC_SELF}/fd/{fd}")
        except OSError as e:
            raise SourceError(self.source, e.errno or 0) from None
        if not is_abs(name):  # a pipe or socket: nothing to bind
            raise PathError(f"bind {q(self.source)}, which is", name, errno.EINVAL)
        try:
            found = k.open_in(HOST, name, os.O_PATH)
        except OSError:
            found = -1
        try:
            got = None if found < 0 else k.fstat(found)
            if got is None or (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino):
                gone = " (removed, or replaced by another file)"
                raise PathError(f"bind {q(self.source)}, which is", name + gone, errno.ESTALE)
        except BaseException:
            if found >= 0:
                k.close(found)
            raise
        return found

    def __str__(self) -> str:
        if self.source == self.target:
            return f"{q(self.source)} flags {self.flags:#x}"
        return f"{q(self.source)} on {q(self.target)} flags {self.flags:#x}"


def source_fd(source: str | None) -> int | None:
    """N for a source ``/proc/self/fd/N`` (decimal digits only), else None."""
    if source is None or not source.startswith(FD_SOURCE):
        return None
    digits = source[len(FD_SOURCE) :]
    if not digits.isdigit() or not digits.isascii() or len(digits) > 9:
        return None
    return int(digits)
