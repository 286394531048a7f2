"""The default profile ``hakurei exec`` uses when no op option is given.

A read-only view of the host's programs and libraries and nothing of the
user's data: host ``/usr`` read-only; ``/bin``, ``/sbin``, ``/lib*`` as on the
host (symlinks on merged-usr systems, read-only binds otherwise); a read-only
auto ``/etc`` with a passwd and group that name only root, the caller and
nobody; a fresh ``/proc``; a minimal ``/dev`` with an mqueue; a tmpfs
``/tmp``; and the root remounted read-only last.
"""

from __future__ import annotations

import os

from .init.kernel import MS_RDONLY
from .ops import Ops

TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def _account(uid: int, gid: int) -> tuple[bytes, bytes]:
    """passwd and group text naming the container's ids (and nothing else of the host)."""
    name = "user"
    try:
        import pwd

        name = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        pass
    passwd = "root:x:0:0:root:/root:/bin/sh\n"
    group = "root:x:0:\n"
    if uid != 0:
        passwd += f"{name}:x:{uid}:{gid}:{name}:/:/bin/sh\n"
    if gid != 0:
        group += f"{name}:x:{gid}:\n"
    if uid != 65534:
        passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    if gid != 65534:
        group += "nogroup:x:65534:\n"
    return passwd.encode(), group.encode()


def default_ops(uid: int | None = None, gid: int | None = None, root: str = "/") -> Ops:
    """The default profile for a container whose ids are ``uid``/``gid``.

    ``root`` is where the host tree is read (tests point it elsewhere).
    """
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    ops = Ops().bind("/usr", "/usr")
    for path in TOP_LEVEL:
        host = os.path.join(root, path.lstrip("/"))
        if os.path.islink(host):
            ops.link(path, os.readlink(host))
        elif os.path.isdir(host):
            ops.bind(path, path)
    passwd, group = _account(uid, gid)
    ops.etc("/etc", "host").place("/etc/passwd", passwd).place("/etc/group", group)
    ops.proc("/proc").dev("/dev", mqueue=True).tmpfs("/tmp", 0, 0o1777)
    return ops.remount("/", MS_RDONLY)


def default_env(environ: dict[str, str] | os._Environ[str] | None = None) -> dict[str, str]:
    """PATH, plus TERM and LANG when set: nothing else leaks from the host."""
    environ = os.environ if environ is None else environ
    env = {"PATH": DEFAULT_PATH}
    for key in ("TERM", "LANG"):
        if key in environ:
            env[key] = environ[key]
    return env
