"""The ops that build a container's filesystem, one per module, and a fluent builder.

``REGISTRY`` maps each wire tag to its class; init decodes ops through it, so an
unknown tag is rejected before anything is mounted.  ``Ops`` is the Go ``Ops``
builder: ``Ops().bind("/usr", "/usr").proc("/proc").dev("/dev", mqueue=True)``.
The module-level functions start a new builder: ``ops.bind(...).proc(...)``.
"""

from __future__ import annotations

from ..init.kernel import MS_NODEV, MS_NOSUID, MS_RDONLY
from .base import Op, State
from .bind import BIND_DEVICE, BIND_ENSURE, BIND_OPTIONAL, BIND_WRITABLE, Bind
from .dev import Dev
from .etc import AutoEtc
from .link import Link
from .mkdir import Mkdir
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
    "Dev",
    "Link",
    "Mkdir",
    "Op",
    "Ops",
    "Overlay",
    "Place",
    "Proc",
    "Remount",
    "State",
    "Tmpfs",
]

REGISTRY: dict[str, type[Op]] = {
    cls.TAG: cls
    for cls in (Bind, Proc, Dev, Tmpfs, Link, Mkdir, Place, Remount, Overlay, AutoEtc, AutoRoot)
}


class Ops(list[Op]):
    """An ordered list of ops with chainable builders (Go ``container.Ops``)."""

    def add(self, op: Op) -> Ops:
        self.append(op)
        return self

    def bind(self, source: str, target: str, flags: int = 0) -> Ops:
        return self.add(Bind(source, target, flags))

    def proc(self, target: str) -> Ops:
        return self.add(Proc(target))

    def dev(self, target: str, mqueue: bool = False) -> Ops:
        """A minimal /dev, read-only once built (its /dev/shm stays writable)."""
        return self.add(Dev(target, mqueue))

    def dev_writable(self, target: str, mqueue: bool = False) -> Ops:
        return self.add(Dev(target, mqueue, write=True))

    def tmpfs(self, target: str, size: int = 0, perm: int = 0o755) -> Ops:
        return self.add(Tmpfs(target, size, perm))

    def readonly(self, target: str, perm: int = 0o755) -> Ops:
        """An empty read-only tmpfs (Go ``Readonly``)."""
        return self.add(
            Tmpfs(target, 0, perm, fsname="readonly", flags=MS_RDONLY | MS_NOSUID | MS_NODEV)
        )

    def link(self, target: str, linkname: str, dereference: bool = False) -> Ops:
        """A symlink at container path ``target`` whose contents are ``linkname``."""
        return self.add(Link(target, linkname, dereference))

    def mkdir(self, path: str, perm: int = 0o755) -> Ops:
        return self.add(Mkdir(path, perm))

    def place(self, path: str, data: bytes) -> Ops:
        return self.add(Place(path, data))

    def remount(self, target: str, flags: int) -> Ops:
        return self.add(Remount(target, flags))

    def overlay(self, target: str, upper: str, work: str, *lower: str) -> Ops:
        return self.add(Overlay(target, list(lower), upper, work))

    def overlay_ephemeral(self, target: str, *lower: str) -> Ops:
        """An overlay whose upper and work dirs live in a throwaway tmpfs."""
        return self.add(Overlay(target, list(lower), "/", None))

    def overlay_readonly(self, target: str, *lower: str) -> Ops:
        return self.add(Overlay(target, list(lower), None, None))

    def etc(self, host: str = "/etc", prefix: str = "host") -> Ops:
        """/etc as relative symlinks into a read-only bind of ``host`` (three ops)."""
        self.mkdir("/etc", 0o755)
        self.bind(host, f"/etc/.host/{prefix}", 0)
        return self.add(AutoEtc(prefix))

    def root(self, host: str, flags: int = 0) -> Ops:
        """Bind every top-level entry of ``host`` (but proc, dev, tmp, mnt, etc) into /."""
        return self.add(AutoRoot(host, flags))


def bind(source: str, target: str, flags: int = 0) -> Ops:
    return Ops().bind(source, target, flags)


def proc(target: str) -> Ops:
    return Ops().proc(target)


def dev(target: str, mqueue: bool = False) -> Ops:
    return Ops().dev(target, mqueue)


def tmpfs(target: str, size: int = 0, perm: int = 0o755) -> Ops:
    return Ops().tmpfs(target, size, perm)


def link(target: str, linkname: str, dereference: bool = False) -> Ops:
    return Ops().link(target, linkname, dereference)


def mkdir(path: str, perm: int = 0o755) -> Ops:
    return Ops().mkdir(path, perm)


def etc(host: str = "/etc", prefix: str = "host") -> Ops:
    return Ops().etc(host, prefix)


def root(host: str, flags: int = 0) -> Ops:
    return Ops().root(host, flags)
