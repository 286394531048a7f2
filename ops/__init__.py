"""The ops that build a container's filesystem, one per module, and a fluent builder.

``REGISTRY`` maps each wire tag to its class; init decodes ops through it, so an
unknown tag is rejected before anything is mounted.  ``Ops`` is the Go ``Ops``
builder: ``Ops().bind("/usr", "/usr").proc("/proc").dev("/dev", mqueue=True)``.

Each op's module is imported when it is first used (a builder method, a
class name read from this package, a tag the decoder meets), not with the
package: a CLI run or a shim loads only the ops its container has.  Building
ops never loads the kernel seam (ctypes): their flags come from
``hakurei.std``.
"""

from __future__ import annotations

from ..std import (
    BIND_DEVICE,
    BIND_ENSURE,
    BIND_OPTIONAL,
    BIND_WRITABLE,
    MS_NODEV,
    MS_NOSUID,
    MS_RDONLY,
)
from .base import REGISTRY, Op, State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .bind import Bind
    from .chmod import Chmod
    from .dev import Dev
    from .etc import AutoEtc
    from .file import File
    from .link import Link
    from .lock import Lock
    from .mkdir import Mkdir
    from .mqueue import Mqueue
    from .overlay import Overlay
    from .place import Place
    from .proc import Proc
    from .remount import Remount
    from .root import AutoRoot
    from .tmpfs import Tmpfs

__all__ = [
    "BIND_DEVICE",
    "BIND_ENSURE",
    "BIND_OPTIONAL",
    "BIND_WRITABLE",
    "REGISTRY",
    "AutoEtc",
    "AutoRoot",
    "Bind",
    "Chmod",
    "Dev",
    "File",
    "Link",
    "Lock",
    "Mkdir",
    "Mqueue",
    "Op",
    "Ops",
    "Overlay",
    "Place",
    "Proc",
    "Remount",
    "State",
    "Tmpfs",
]

#: Op class name → its module, for ``from hakurei.ops import Bind`` (PEP 562).
_CLASSES = {
    "AutoEtc": "etc",
    "AutoRoot": "root",
    "Bind": "bind",
    "Chmod": "chmod",
    "Dev": "dev",
    "File": "file",
    "Link": "link",
    "Lock": "lock",
    "Mkdir": "mkdir",
    "Mqueue": "mqueue",
    "Overlay": "overlay",
    "Place": "place",
    "Proc": "proc",
    "Remount": "remount",
    "Tmpfs": "tmpfs",
}


def __getattr__(name: str) -> type[Op]:
    module = _CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls: type[Op] = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = cls  # the next lookup is an ordinary attribute
    return cls


class Ops(list[Op]):
    """An ordered list of ops with chainable builders (Go ``container.Ops``)."""

    def add(self, op: Op) -> Ops:
        self.append(op)
        return self

    def bind(self, source: str, target: str, flags: int = 0) -> Ops:
        from .bind import Bind

        return self.add(Bind(source, target, flags))

    def proc(self, target: str) -> Ops:
        from .proc import Proc

        return self.add(Proc(target))

    def dev(self, target: str, mqueue: bool = False) -> Ops:
        """A minimal /dev, read-only once built (its /dev/shm stays writable)."""
        from .dev import Dev

        return self.add(Dev(target, mqueue))

    def dev_writable(self, target: str, mqueue: bool = False) -> Ops:
        from .dev import Dev

        return self.add(Dev(target, mqueue, write=True))

    def tmpfs(self, target: str, size: int = 0, perm: int = 0o755) -> Ops:
        from .tmpfs import Tmpfs

        return self.add(Tmpfs(target, size, perm))

    def readonly(self, target: str, perm: int = 0o755) -> Ops:
        """An empty read-only tmpfs (Go ``Readonly``)."""
        from .tmpfs import Tmpfs

        return self.add(
            Tmpfs(target, 0, perm, fsname="readonly", flags=MS_RDONLY | MS_NOSUID | MS_NODEV)
        )

    def link(self, target: str, linkname: str, dereference: bool = False) -> Ops:
        """A symlink at container path ``target`` whose contents are ``linkname``."""
        from .link import Link

        return self.add(Link(target, linkname, dereference))

    def mkdir(self, path: str, perm: int = 0o755) -> Ops:
        from .mkdir import Mkdir

        return self.add(Mkdir(path, perm))

    def place(self, path: str, data: bytes, perm: int = 0o600, writable: bool = False) -> Ops:
        """``data`` in a private file bound on ``path`` (bwrap ``--[ro-]bind-data``)."""
        from .place import Place

        return self.add(Place(path, data, perm, writable))

    def file(self, path: str, data: bytes, perm: int = 0o666) -> Ops:
        """``data`` written to a regular file ``path`` in the tree (bwrap ``--file``)."""
        from .file import File

        return self.add(File(path, data, perm))

    def chmod(self, path: str, perm: int) -> Ops:
        """Set the mode of ``path``, resolved in the container (bwrap ``--chmod``)."""
        from .chmod import Chmod

        return self.add(Chmod(path, perm))

    def mqueue(self, target: str) -> Ops:
        """An mqueue filesystem at ``target`` (bwrap ``--mqueue``)."""
        from .mqueue import Mqueue

        return self.add(Mqueue(target))

    def lock(self, path: str) -> Ops:
        """Init read-locks ``path`` while it lives (bwrap ``--lock-file``); add it last."""
        from .lock import Lock

        return self.add(Lock(path))

    def remount(self, target: str, flags: int) -> Ops:
        from .remount import Remount

        return self.add(Remount(target, flags))

    def overlay(self, target: str, upper: str, work: str, *lower: str) -> Ops:
        from .overlay import Overlay

        return self.add(Overlay(target, list(lower), upper, work))

    def overlay_ephemeral(self, target: str, *lower: str) -> Ops:
        """An overlay whose upper and work dirs live in a throwaway tmpfs."""
        from .overlay import Overlay

        return self.add(Overlay(target, list(lower), "/", None))

    def overlay_readonly(self, target: str, *lower: str) -> Ops:
        from .overlay import Overlay

        return self.add(Overlay(target, list(lower), None, None))

    def etc(self, host: str = "/etc", prefix: str = "host") -> Ops:
        """/etc as relative symlinks into a read-only bind of ``host`` (three ops)."""
        from .etc import AutoEtc

        self.mkdir("/etc", 0o755)
        self.bind(host, f"/etc/.host/{prefix}", 0)
        return self.add(AutoEtc(prefix))

    def root(self, host: str, flags: int = 0) -> Ops:
        """Bind every top-level entry of ``host`` (but proc, dev, tmp, mnt, etc) into /."""
        from .root import AutoRoot

        return self.add(AutoRoot(host, flags))
