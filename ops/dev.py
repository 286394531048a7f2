"""Dev op: a minimal /dev on a tmpfs (reference §7.3).

Only the six harmless character devices are bound from the host, next to a
private devpts instance (so the container cannot reach the host's ptys) and
the usual links into /proc.  The result is read-only unless ``write`` is set,
with a separate writable tmpfs on /dev/shm because programs expect one.
Callers that must add entries to /dev use ``write=True`` and a Remount last.
"""

from __future__ import annotations

import os
import posixpath

from ..errors import MountError
from ..std import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
)
from ._mount import bind_onto, mount_mqueue, mount_on, tmpfs_options
from .base import BOOL, DEST, HOST_PROC_SELF, SYSROOT, Op, State, q, register, to_host

#: device nodes bound from the host, each a file bind (not recursive, nosuid only)
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
#: (link name, contents): the fds and ptmx through the container's own /proc and devpts
LINKS = (
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("fd", "/proc/self/fd"),
    ("core", "/proc/kcore"),
    ("ptmx", "pts/ptmx"),
)
#: a directory of the new /dev, opened to mount on, never through a link
_DIR_HERE = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW
#: no gid= option: the tty group of the host is not mapped in the container
DEVPTS_OPTIONS = "newinstance,ptmxmode=0666,mode=620"


@register
class Dev(Op):
    TAG = "dev"
    PREFIX = "mounting"
    FIELDS = (("target", DEST), ("mqueue", BOOL), ("write", BOOL))

    __slots__ = ("mqueue", "target", "write")

    def __init__(self, target: str, mqueue: bool = False, write: bool = False) -> None:
        self.target = target
        self.mqueue = mqueue
        self.write = write
        self.validate()

    def apply(self, st: State) -> None:
        """Build the tmpfs detached-then-attached and fill it through its own fd.

        The tmpfs is new and private to init, so its entries are made by name
        relative to the mount's fd; only the mount point itself is resolved in
        the container's root.
        """
        k = st.k
        where = k.mkdir_in(SYSROOT, self.target, st.parent_perm, st.parent_perm)
        try:
            try:
                dev = k.fsmount(
                    "tmpfs",
                    "devtmpfs",
                    {"mode": f"0{st.parent_perm:o}"},
                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                )
            except MountError as e:
                e.target = self.target  # the seam's fsmount has no place yet
                raise
            try:
                k.move_mount(dev, where)
                self.fill(st, dev)
            finally:
                k.close(dev)
        finally:
            k.close(where)

    def fill(self, st: State, dev: int) -> None:
        k = st.k
        for name in DEVICES:
            _bind_node(st, dev, name, to_host(f"/dev/{name}"))
        for name, contents in LINKS:
            k.symlinkat(contents, dev, name)

        k.mkdirat(dev, "shm", st.parent_perm)
        k.mkdirat(dev, "pts", st.parent_perm)
        _mount_in(st, dev, self.target, "pts", "devpts", MS_NOSUID | MS_NOEXEC, DEVPTS_OPTIONS)

        # A session kept from the caller may have a terminal on stdout; give it
        # a /dev/console that is that terminal, as a login would.
        if st.retain_session and k.isatty(1):
            tty = k.readlink(f"{HOST_PROC_SELF}/fd/1")
            _bind_node(st, dev, "console", to_host(tty))

        if self.mqueue:
            k.mkdirat(dev, "mqueue", st.parent_perm)
            fd = k.openat(dev, "mqueue", _DIR_HERE)
            try:
                mount_mqueue(st, fd, posixpath.join(self.target, "mqueue"))
            finally:
                k.close(fd)

        if self.write:
            return
        # Not recursive: the device binds, devpts and mqueue keep their own flags.
        k.setattr_fd(dev, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY, False)
        _mount_in(
            st, dev, self.target, "shm", "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_options(0o1777, 0)
        )

    def __str__(self) -> str:
        if self.mqueue:
            return f"dev on {q(self.target)} with mqueue"
        return f"dev on {q(self.target)}"


def _bind_node(st: State, dev: int, name: str, source: str) -> None:
    """An empty file ``name`` in the new /dev, with the host's ``source`` bound on it."""
    k = st.k
    k.close(k.openat(dev, name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444))
    node = k.openat(dev, name, os.O_PATH | os.O_NOFOLLOW)
    try:
        bind_onto(st, source, node, 0)
    finally:
        k.close(node)


def _mount_in(
    st: State, dev: int, target: str, name: str, fstype: str, flags: int, data: str
) -> None:
    """A new ``fstype`` on the directory ``name`` of the new /dev at ``target``."""
    k = st.k
    fd = k.openat(dev, name, _DIR_HERE)
    try:
        mount_on(st, fd, posixpath.join(target, name), fstype, fstype, flags, data)
    finally:
        k.close(fd)
