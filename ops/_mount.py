"""Mount helpers shared by the ops (reference §6.2-§6.5), all through ``st.k``.

``remount`` deliberately differs from Go's: the kernel's ``MS_REMOUNT`` never
recurses, and Go walks the submounts while ignoring EACCES, which can leave a
writable submount under a read-only bind.  ``mount_setattr(2)`` only *adds*
attributes (so flags the kernel locked on the source survive without being
restated) and, with AT_RECURSIVE, reaches every submount atomically.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from ..errors import MountinfoError, PathError
from ..init.kernel import (
    AT_RECURSIVE,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_BIND,
    MS_NODEV,
    MS_RDONLY,
    MS_REC,
    MS_SILENT,
)
from . import _mountinfo
from .base import HOST_PROC_SELF, parent_perm, q

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .base import State

MOUNTINFO = HOST_PROC_SELF + "/mountinfo"


def ensure_file(st: State, name: str, perm: int, pperm: int) -> None:
    """Make sure a bind target exists as a non-directory, creating an empty file if needed."""
    k = st.k
    try:
        info = k.stat(name)
    except FileNotFoundError:
        k.makedirs(posixpath.dirname(name), pperm)
        fd = k.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, perm)
        k.close(fd)
        return
    if stat.S_ISDIR(info.st_mode):
        raise PathError("ensure", name, errno.EISDIR)


def tmpfs_options(perm: int, size: int) -> str:
    """Go ``mode=%#o`` (``mode=0755``, ``mode=01777``, ``mode=0``) plus ``,size=N``."""
    opts = f"mode=0{perm:o}" if perm else "mode=0"
    if size > 0:
        opts += f",size={size}"
    return opts


def mount_tmpfs(st: State, fsname: str, target: str, flags: int, size: int, perm: int) -> None:
    st.k.makedirs(target, parent_perm(perm))
    st.k.mount(fsname, target, "tmpfs", flags, tmpfs_options(perm, size))


def bind_mount(st: State, source: str, target: str, flags: int) -> None:
    """Bind ``source`` on ``target``, then add nosuid (and nodev/rdonly) to it.

    Only MS_REC matters at bind time.  The attributes go straight to the new
    mount: mount(2) and mount_setattr(2) resolve ``target`` the same way, so
    the mountinfo lookup that ``remount`` needs for an arbitrary path would
    only re-read what we just created (it cost ~0.2 ms per bind).
    """
    st.k.mount(source, target, "", MS_SILENT | MS_BIND | (flags & MS_REC), "")
    _add_attrs(st, target, flags)


def remount(st: State, target: str, flags: int) -> None:
    """Add nosuid, and nodev/rdonly if asked, to the mount at ``target`` (and below with MS_REC).

    The target is resolved against init's current root first; the mount point
    must then appear in mountinfo, so a typo or a symlink into the wrong place
    fails instead of silently changing the mount that contains the path.
    """
    k = st.k
    final = k.realpath(target)
    if final != target:
        st.verbose(f"target resolves to {q(final)}")
    entries = _mountinfo.parse(k.read_file(MOUNTINFO))
    if not any(e.target == final for e in entries):
        raise MountinfoError("unfold", f"mount point {q(final)} never appeared in mountinfo")
    _add_attrs(st, final, flags)


def _add_attrs(st: State, target: str, flags: int) -> None:
    """mount_setattr: only adds, so locked flags stay; AT_RECURSIVE reaches submounts."""
    attrs = MOUNT_ATTR_NOSUID
    if flags & MS_NODEV:
        attrs |= MOUNT_ATTR_NODEV
    if flags & MS_RDONLY:
        attrs |= MOUNT_ATTR_RDONLY
    st.k.mount_setattr(target, AT_RECURSIVE if flags & MS_REC else 0, attrs)
