"""Dev op: a minimal /dev on a tmpfs (reference §7.3).

Only the six harmless character devices are bound from the host, next to a
private devpts instance (so the container cannot reach the host's ptys) and
the usual links into /proc.  The result is read-only unless ``write`` is set,
with a separate writable tmpfs on /dev/shm because programs expect one.
Callers that must add entries to /dev use ``write=True`` and a Remount last.
"""

from __future__ import annotations

from ..init.kernel import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY
from ._mount import bind_mount, ensure_file, mount_tmpfs, remount
from .base import ABS, BOOL, HOST_PROC_SELF, Op, State, q, to_host, to_sysroot

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
#: no gid= option: the tty group of the host is not mapped in the container
DEVPTS_OPTIONS = "newinstance,ptmxmode=0666,mode=620"


class Dev(Op):
    TAG = "dev"
    PREFIX = "mounting"
    FIELDS = (("target", ABS), ("mqueue", BOOL), ("write", BOOL))

    __slots__ = ("mqueue", "target", "write")

    def __init__(self, target: str, mqueue: bool = False, write: bool = False) -> None:
        self.target = target
        self.mqueue = mqueue
        self.write = write
        self.validate()

    def apply(self, st: State) -> None:
        k = st.k
        t = to_sysroot(self.target)
        mount_tmpfs(st, "devtmpfs", t, MS_NOSUID | MS_NODEV, 0, st.parent_perm)

        for name in DEVICES:
            path = f"{t}/{name}"
            ensure_file(st, path, 0o444, st.parent_perm)
            bind_mount(st, to_host(f"/dev/{name}"), path, 0)
        for name, contents in LINKS:
            k.symlink(contents, f"{t}/{name}")

        shm, pts = f"{t}/shm", f"{t}/pts"
        k.mkdir(shm, st.parent_perm)
        k.mkdir(pts, st.parent_perm)
        k.mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, DEVPTS_OPTIONS)

        # A session kept from the caller may have a terminal on stdout; give it
        # a /dev/console that is that terminal, as a login would.
        if st.retain_session and k.isatty(1):
            console = f"{t}/console"
            ensure_file(st, console, 0o444, st.parent_perm)
            tty = k.readlink(f"{HOST_PROC_SELF}/fd/1")
            bind_mount(st, to_host(tty), console, 0)

        if self.mqueue:
            mq = f"{t}/mqueue"
            k.mkdir(mq, st.parent_perm)
            k.mount("mqueue", mq, "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, "")

        if self.write:
            return
        # Not recursive: the device binds, devpts and mqueue keep their own flags.
        remount(st, t, MS_RDONLY)
        mount_tmpfs(st, "tmpfs", shm, MS_NOSUID | MS_NODEV, 0, 0o1777)

    def __str__(self) -> str:
        if self.mqueue:
            return f"dev on {q(self.target)} with mqueue"
        return f"dev on {q(self.target)}"
