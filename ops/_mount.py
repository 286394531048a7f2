"""Mount helpers shared by the ops (reference §6.2-§6.5), all through ``st.k``.

Every destination is an fd from the kernel seam's in-root resolution
(``mkdir_in``/``file_in``/``open_in``), never a path string: a bind is a
detached copy (``open_tree``) given its attributes first and then attached
onto that fd (``move_mount``); a new filesystem is mounted onto the directory
fd itself (``mount_here``).  So a link planted in a bound directory can only
lead somewhere inside the container, and nothing can swap a name between the
check and the mount.

Attributes deliberately differ from Go's remount: the kernel's
``MS_REMOUNT`` never recurses, and Go walks the submounts while ignoring
EACCES, which can leave a writable submount under a read-only bind.
``mount_setattr(2)`` only *adds* attributes (so flags the kernel locked on
the source survive without being restated) and, with AT_RECURSIVE, reaches
every submount atomically.
"""

from __future__ import annotations

import os

from ..errors import MountError, SetupError
from ..std import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
)
from .base import SYSROOT, parent_perm, q

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .base import State


def tmpfs_options(perm: int, size: int) -> str:
    """Go ``mode=%#o`` (``mode=0755``, ``mode=01777``, ``mode=0``) plus ``,size=N``."""
    opts = f"mode=0{perm:o}" if perm else "mode=0"
    if size > 0:
        opts += f",size={size}"
    return opts


def mount_tmpfs(st: State, fsname: str, path: str, flags: int, size: int, perm: int) -> None:
    """A tmpfs on the container path ``path`` (made with its parents if missing).

    ``perm`` is the tmpfs root's alone: missing parents get the parent perm
    without the group/other access ``perm`` denies, as bubblewrap makes
    them, so ``--perms 0000 --tmpfs /a/b`` leaves ``/a`` 0700 (searchable by
    its owner) and a 1777 never lands on a parent.  The directory mounted
    over (hidden by the tmpfs) gets ``parent_perm(perm)``.
    """
    k = st.k
    fd = k.mkdir_in(SYSROOT, path, parent_perm(perm), parent_perm(perm, st.parent_perm))
    try:
        mount_on(st, fd, path, fsname, "tmpfs", flags, tmpfs_options(perm, size))
    finally:
        k.close(fd)


#: POSIX message queues hold no programs, devices or set-id files
MQUEUE_FLAGS = MS_NOSUID | MS_NOEXEC | MS_NODEV


def mount_mqueue(st: State, fd: int, path: str) -> None:
    """The IPC namespace's mqueue filesystem on the directory ``fd`` (container ``path``).

    One definition for the Dev op's ``/dev/mqueue`` and the Mqueue op's own.
    """
    mount_on(st, fd, path, "mqueue", "mqueue", MQUEUE_FLAGS, "")


def mount_on(
    st: State, fd: int, path: str, source: str, fstype: str, flags: int, data: str
) -> None:
    """A new ``fstype`` on the directory ``fd``; a failure names the container ``path``.

    The seam mounts on ``.`` of the directory it entered, so its error alone
    could only say ``on .``.
    """
    try:
        st.k.mount_here(fd, source, fstype, flags, data)
    except MountError as e:
        e.target = path
        raise


def bind_onto(st: State, source: str, fd: int, flags: int) -> None:
    """Bind ``source`` (a path in init's view) onto exactly the file ``fd`` refers to.

    The copy is detached while it gets nosuid (and nodev/rdonly) and is only
    then attached, so the container never has a moment with a writable or
    suid-capable view, and no name is looked up after the attributes are set.
    Only MS_REC, MS_RDONLY and MS_NODEV of ``flags`` matter.
    """
    k = st.k
    recursive = bool(flags & MS_REC)
    tree = k.open_tree(source, recursive)
    try:
        k.setattr_fd(tree, attrs(flags), recursive)
        k.move_mount(tree, fd)
    finally:
        k.close(tree)


def bind_tree_onto(st: State, source: int, fd: int, flags: int) -> None:
    """``bind_onto`` for a source that is an fd (in init's mount namespace), not a path."""
    k = st.k
    recursive = bool(flags & MS_REC)
    tree = k.open_tree_fd(source, recursive)
    try:
        k.setattr_fd(tree, attrs(flags), recursive)
        k.move_mount(tree, fd)
    finally:
        k.close(tree)


def remount(st: State, path: str, flags: int) -> None:
    """Add nosuid, and nodev/rdonly if asked, to the mount at container path ``path``.

    ``path`` is resolved inside the container's root and must be the root of a
    mount, so a typo or a symlink into the wrong place fails instead of
    silently changing the mount that contains the path.
    """
    k = st.k
    fd = k.open_in(SYSROOT, path, os.O_PATH)
    try:
        if not k.is_mount_root(fd):
            raise SetupError(f"cannot remount {q(path)}: not a mount point")
        k.setattr_fd(fd, attrs(flags), bool(flags & MS_REC))
    finally:
        k.close(fd)


def attrs(flags: int) -> int:
    """MOUNT_ATTR_* for MS_* flags: always nosuid, nodev and rdonly when asked."""
    out = MOUNT_ATTR_NOSUID
    if flags & MS_NODEV:
        out |= MOUNT_ATTR_NODEV
    if flags & MS_RDONLY:
        out |= MOUNT_ATTR_RDONLY
    return out
