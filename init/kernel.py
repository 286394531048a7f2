"""The one seam between hakurei and the kernel (Go: ``syscallDispatcher``).

Every system call the shim, init and the ops make goes through a ``Kernel``
instance.  Production uses this class; unit tests pass a recording fake that
replays an expected, ordered list of calls, so "bind with the writable flag
issues mount(..., 0x4004) then remounts with nosuid" is a plain assertion.

This is also the only module that calls C directly, through ``ffi`` (C types
on ``_ctypes``, without ctypes' 4 ms import), every ``prctl`` included.  It
runs in init for every container, so it imports only what init needs anyway
and loads libc once, at import time, while the host filesystem is still
visible.
"""

from __future__ import annotations

import _signal
import _socket
import errno
import fcntl
import os
import select
import stat
import sys
import time

from ..errors import MountError, PathError, SymlinkExistsError

# Mount and namespace flags live in the leaf hakurei.std, so that building ops or
# reading a flag does not load this module's ctypes; re-exported here for init.
from ..std import CLONE_NEWCGROUP as CLONE_NEWCGROUP
from ..std import CLONE_NEWIPC as CLONE_NEWIPC
from ..std import CLONE_NEWNET as CLONE_NEWNET
from ..std import CLONE_NEWNS as CLONE_NEWNS
from ..std import CLONE_NEWPID as CLONE_NEWPID
from ..std import CLONE_NEWUSER as CLONE_NEWUSER
from ..std import CLONE_NEWUTS as CLONE_NEWUTS
from ..std import MNT_DETACH as MNT_DETACH
from ..std import MOUNT_ATTR_NODEV as MOUNT_ATTR_NODEV
from ..std import MOUNT_ATTR_NOEXEC as MOUNT_ATTR_NOEXEC
from ..std import MOUNT_ATTR_NOSUID as MOUNT_ATTR_NOSUID
from ..std import MOUNT_ATTR_RDONLY as MOUNT_ATTR_RDONLY
from ..std import MS_BIND as MS_BIND
from ..std import MS_NOATIME as MS_NOATIME
from ..std import MS_NODEV as MS_NODEV
from ..std import MS_NODIRATIME as MS_NODIRATIME
from ..std import MS_NOEXEC as MS_NOEXEC
from ..std import MS_NOSUID as MS_NOSUID
from ..std import MS_NOSYMFOLLOW as MS_NOSYMFOLLOW
from ..std import MS_PRIVATE as MS_PRIVATE
from ..std import MS_RDONLY as MS_RDONLY
from ..std import MS_REC as MS_REC
from ..std import MS_RELATIME as MS_RELATIME
from ..std import MS_REMOUNT as MS_REMOUNT
from ..std import MS_SILENT as MS_SILENT
from ..std import MS_SLAVE as MS_SLAVE
from . import ffi
from .ffi import (
    Structure,
    addressof,
    byref,
    c_char_p,
    c_int,
    c_uint,
    c_uint32,
    c_uint64,
    c_ulong,
    c_ushort,
    c_void_p,
    get_errno,
    sizeof,
    string_buffer,
)

# mount_setattr(2): reaches every submount of a tree in one call (Linux 5.12).
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000

# openat2(2) resolve flags (Linux 5.6): how every destination inside the new
# root is reached, so a symlink planted in a bound directory means what it
# means to the program (a path in the container) and never leads to the host.
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_IN_ROOT = 0x10
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
#: openat2 attempts while the kernel answers EAGAIN (a racing rename or mount)
_OPENAT2_TRIES = 1000

# The new mount API (Linux 5.2; mount_setattr 5.12): a mount is made detached,
# given its attributes, then attached onto an fd, so nothing is looked up by
# name between the check and the use.
OPEN_TREE_CLONE = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
STATX_ATTR_MOUNT_ROOT = 0x2000

# capabilities and prctl
CAP_DAC_OVERRIDE = 1
CAP_SETPCAP = 8
CAP_SYS_ADMIN = 21
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_PTRACER = 0x59616D61
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_TIOCSPTLCK = 0x40045431  # _IOW("T", 0x31, int)
_TIOCGPTN = 0x80045430  # _IOR("T", 0x30, unsigned int)
_TIOCSWINSZ = 0x5414
_IFF_UP = 0x1

# x86_64 and aarch64 numbers of the calls glibc 2.36 does not wrap.
_MACHINE = os.uname().machine
if _MACHINE == "x86_64":
    SYS_PIVOT_ROOT, SYS_SECCOMP, SYS_PIDFD_OPEN, SYS_STATX = 155, 317, 434, 332
elif _MACHINE == "aarch64":
    SYS_PIVOT_ROOT, SYS_SECCOMP, SYS_PIDFD_OPEN, SYS_STATX = 41, 277, 434, 291
else:  # pragma: no cover - only the two arches hakurei supports
    raise ImportError(f"hakurei does not support {_MACHINE}")
# One number on every architecture since Linux 5.1 unified the new calls.
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 428, 429, 430, 431, 432
SYS_OPENAT2 = 437
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_RESTRICT_SELF = 446
SYS_MOUNT_SETATTR = 442
SYS_CLONE3 = 435
CLONE_PIDFD = 0x00001000
SECCOMP_SET_MODE_FILTER = 1
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1
LANDLOCK_SCOPE_SIGNAL = 2

_libc = ffi.Library(None)
_syscall = _libc.function("syscall", ffi.c_long)
_mount = _libc.function("mount", argtypes=(c_char_p,) * 3 + (c_ulong, c_char_p))
_umount2 = _libc.function("umount2", argtypes=(c_char_p, c_int))
_unshare = _libc.function("unshare", argtypes=(c_int,))
_setns = _libc.function("setns", argtypes=(c_int, c_int))
_sethostname = _libc.function("sethostname", argtypes=(c_char_p, ffi.c_size_t))
#: prctl(2) options for a raw seccomp program (linux/prctl.h, linux/seccomp.h).
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
_prctl_raw = _libc.function("prctl", argtypes=(c_int,) + (c_ulong,) * 4)
_signalfd = _libc.function("signalfd", argtypes=(c_int, c_char_p, c_int))
#: signalfd(2) flags, and the size of one ``struct signalfd_siginfo`` read from it.
_SFD_CLOEXEC = 0o2000000
_SFD_NONBLOCK = 0o4000
_SIGINFO_SIZE = 128
#: ``si_code`` of a signal the kernel sent itself: a terminal's Ctrl-C, Ctrl-\ and
#: Ctrl-Z to its foreground group, its hangup (siginfo.h).  kill(2) gives SI_USER (0).
SI_KERNEL = 0x80
_capset = _libc.function("capset")


class _CapHeader(Structure):
    _fields_ = (("version", c_uint32), ("pid", c_int))


class _CapData(Structure):
    _fields_ = (
        ("effective", c_uint32),
        ("permitted", c_uint32),
        ("inheritable", c_uint32),
    )


class _SockFprog(Structure):
    _fields_ = (("len", c_ushort), ("filter", c_void_p))


class _MountAttr(Structure):
    _fields_ = (
        ("attr_set", c_uint64),
        ("attr_clr", c_uint64),
        ("propagation", c_uint64),
        ("userns_fd", c_uint64),
    )


class _OpenHow(Structure):
    _fields_ = (
        ("flags", c_uint64),
        ("mode", c_uint64),
        ("resolve", c_uint64),
    )


class _CloneArgs(Structure):
    """struct clone_args (clone3, Linux 5.3): the first 64 bytes, CLONE_ARGS_SIZE_VER0."""

    _fields_ = (
        ("flags", c_uint64),
        ("pidfd", c_uint64),
        ("child_tid", c_uint64),
        ("parent_tid", c_uint64),
        ("exit_signal", c_uint64),
        ("stack", c_uint64),
        ("stack_size", c_uint64),
        ("tls", c_uint64),
    )


class _LandlockAttr(Structure):
    _fields_ = (
        ("handled_access_fs", c_uint64),
        ("handled_access_net", c_uint64),
        ("scoped", c_uint64),
    )


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def _errno() -> int:
    return get_errno()


def _oserror(what: str) -> OSError:
    err = _errno()
    return OSError(err, os.strerror(err), what)


def _prctl_libc(option: int, arg2: int = 0, arg3: int = 0) -> None:
    """prctl(2) through libc: every option hakurei sets (python-prctl's import cost
    ~0.5 ms per start, and it refuses ambient caps and Yama's PR_SET_PTRACER)."""
    if _prctl_raw(option, arg2, arg3, 0, 0) != 0:
        raise _oserror("prctl")


def _b(path: str) -> bytes:
    return os.fsencode(path)


def _mkdir_all(path: str, mode: int) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    except FileNotFoundError:
        parent = os.path.dirname(path.rstrip("/"))
        if not parent or parent == path:
            raise
        _mkdir_all(parent, mode)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            if not os.path.isdir(path):
                raise


class Kernel:
    """The real kernel.  Methods raise ``OSError`` (or a typed subclass).

    What stays outside (docs/design.md, "The syscall seam"): signal masks and
    handlers, fd bookkeeping of pipes and copies a function makes and closes
    itself, ``getppid``/``setpgid``, and the lines written to stderr and the
    report channel.  Everything a unit test replays goes through here.
    """

    # -- identity and namespaces ------------------------------------------------
    def getpid(self) -> int:
        return os.getpid()

    def unshare(self, flags: int) -> None:
        if _unshare(flags) != 0:
            raise _oserror("unshare")

    def setns(self, fd: int, nstype: int) -> None:
        """Join the namespace ``fd`` refers to (``nstype``: its CLONE_NEW* kind, or 0)."""
        if _setns(fd, nstype) != 0:
            raise _oserror("setns")

    def write_file(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def read_file(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def sethostname(self, name: str) -> None:
        raw = os.fsencode(name)  # any bytes the kernel takes (surrogate escapes included)
        if _sethostname(raw, len(raw)) != 0:
            raise _oserror("sethostname")

    def loopback_up(self) -> None:
        """Bring ``lo`` up in a new network namespace, as bubblewrap does.

        A fresh namespace has ``lo`` down: even 127.0.0.1 would be unreachable.
        """
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM, 0)
        try:
            req = bytearray(b"lo".ljust(40, b"\0"))
            fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req)
            flags = int.from_bytes(req[16:18], "little") | _IFF_UP
            req[16:18] = flags.to_bytes(2, "little")
            fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, req)
        finally:
            s.close()

    def pidfd_open(self, pid: int) -> int:
        fd = int(_syscall(SYS_PIDFD_OPEN, c_int(pid), c_uint(0)))
        if fd < 0:
            raise _oserror("pidfd_open")
        return fd

    def clone_pidfd(self, flags: int) -> tuple[int, int]:
        """fork(2) with namespace ``flags``: (pid, pidfd) in the parent, (0, -1) in the child.

        clone3 without a stack behaves as fork; the child gets new namespaces
        at birth and a pidfd comes back without a pid-reuse window.  Only for
        a single-threaded caller: CPython's after-fork hooks do not run (the
        fork server has no threads, no locks held, nothing registered).
        """
        pidfd = c_int(-1)
        args = _CloneArgs(
            flags=flags | CLONE_PIDFD,
            pidfd=addressof(pidfd),
            exit_signal=17,  # SIGCHLD, so the parent's waitpid sees it as a child
        )
        pid = int(_syscall(SYS_CLONE3, byref(args), ffi.c_size_t(sizeof(args))))
        if pid < 0:
            raise _oserror("clone3")
        return pid, pidfd.value if pid else -1

    # -- processes and signals (the shim's relay, init's PID-1 loop) ------------------
    # Thin: one call each, so a test replays "SIGTERM arrives, init forwards it,
    # the program exits 143" as a list of calls.  Signals come back as numbers:
    # nothing of a siginfo but ``si_signo`` is used.
    def fork(self) -> int:
        return os.fork()

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return os.waitpid(pid, options)

    def kill(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def posix_spawn(
        self,
        path: str,
        argv: list[str],
        env: dict[str, str],
        *,
        file_actions: list[tuple[object, ...]],
        setsid: bool,
        setsigmask: tuple[int, ...],
        setsigdef: tuple[int, ...],
    ) -> int:
        return os.posix_spawn(
            path,
            argv,
            env,
            file_actions=file_actions,
            setsid=setsid,
            setsigmask=setsigmask,
            setsigdef=setsigdef,
        )

    def execve(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        """execve(2) in this very process (``as_pid_1``): returns only by raising OSError."""
        os.execve(path, argv, env)

    def setsid(self) -> None:
        os.setsid()

    def set_signal_mask(self, sigs: tuple[int, ...]) -> None:
        """The blocked set becomes exactly ``sigs`` (an exec'd program inherits it)."""
        _signal.pthread_sigmask(_signal.SIG_SETMASK, sigs)

    def default_signals(self, sigs: tuple[int, ...]) -> None:
        """Each of ``sigs`` back to its default action (an ignored one stays ignored in exec)."""
        for sig in sigs:
            _signal.signal(sig, _signal.SIG_DFL)

    def sigwaitinfo(self, sigset: tuple[int, ...]) -> tuple[int, int]:
        """Wait for one of the (blocked) signals ``sigset``; its number and ``si_code``."""
        info = _signal.sigwaitinfo(sigset)
        return int(info.si_signo), int(info.si_code)

    def sigtimedwait(self, sigset: tuple[int, ...], timeout: float) -> tuple[int, int] | None:
        """``sigwaitinfo`` for at most ``timeout`` seconds; None if none came."""
        info = _signal.sigtimedwait(sigset, timeout)
        return None if info is None else (int(info.si_signo), int(info.si_code))

    def signalfd(self, sigset: tuple[int, ...]) -> int:
        """A non-blocking signalfd(2) for ``sigset`` (which the caller keeps blocked).

        Unlike a handler and a wakeup fd, each signal read from it comes with
        its ``si_code``: who sent it (``read_signals``).
        """
        mask = 0
        for sig in sigset:
            mask |= 1 << (sig - 1)
        fd = int(_signalfd(-1, mask.to_bytes(8, sys.byteorder), _SFD_CLOEXEC | _SFD_NONBLOCK))
        if fd < 0:
            raise _oserror("signalfd")
        return fd

    def read_signals(self, fd: int) -> list[tuple[int, int]]:
        """The signals pending on a signalfd, in order: (number, ``si_code``) each."""
        try:
            data = os.read(fd, 16 * _SIGINFO_SIZE)
        except BlockingIOError:
            return []
        return [
            (
                int.from_bytes(data[i : i + 4], sys.byteorder),
                int.from_bytes(data[i + 8 : i + 12], sys.byteorder, signed=True),
            )
            for i in range(0, len(data) - _SIGINFO_SIZE + 1, _SIGINFO_SIZE)
        ]

    def monotonic(self) -> float:
        """The clock init's adopt-wait deadline is measured on (a fake one in tests)."""
        return time.monotonic()

    def poll(self, fds: tuple[int, ...]) -> list[int]:
        """Wait until one of ``fds`` is readable (or hung up); those that are, in poll's order."""
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        return [fd for fd, _ in poller.poll()]

    def read(self, fd: int, n: int) -> bytes:
        return os.read(fd, n)

    def dup2(self, fd: int, fd2: int) -> None:
        """``fd2`` becomes a copy of ``fd`` (inheritable, as the program's fds must be)."""
        os.dup2(fd, fd2)

    def closerange(self, low: int, high: int) -> None:
        os.closerange(low, high)

    def exit(self, status: int) -> NoReturn:
        """_exit(2): no atexit, no flushing, no finally (a fork must not run the parent's)."""
        os._exit(status)

    # -- prctl and capabilities ------------------------------------------------
    # One named method per prctl(2) use: no caller passes a PR_* number, and a
    # recorded call says what it does ("set_no_new_privs", not "prctl 38 1").
    def set_name(self, name: str) -> None:
        """PR_SET_NAME, so ``ps`` shows ``init``/``hakurei-shim`` rather than python."""
        # The kernel copies at most 15 bytes and ends them itself.
        raw = string_buffer(os.fsencode(name)[:15] + b"\0")
        _prctl_libc(PR_SET_NAME, addressof(raw))

    def set_pdeathsig(self, sig: int) -> None:
        """PR_SET_PDEATHSIG: ``sig`` arrives when the thread that forked us exits."""
        _prctl_libc(PR_SET_PDEATHSIG, sig)

    def set_dumpable(self, dumpable: bool) -> None:
        """PR_SET_DUMPABLE; False is SUID_DUMP_DISABLE (no core, no ptrace by the same user)."""
        _prctl_libc(PR_SET_DUMPABLE, int(dumpable))

    def set_ptracer(self, pid: int) -> None:
        """Yama's PR_SET_PTRACER; 0 takes back any exception granted to another process."""
        _prctl_libc(PR_SET_PTRACER, pid)

    def set_no_new_privs(self) -> None:
        """PR_SET_NO_NEW_PRIVS: for good, for us and every process we start."""
        _prctl_libc(PR_SET_NO_NEW_PRIVS, 1)

    def ambient_clear_all(self) -> None:
        """PR_CAP_AMBIENT_CLEAR_ALL: no capability survives an exec as ambient."""
        _prctl_libc(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)

    def ambient_raise(self, cap: int) -> None:
        """PR_CAP_AMBIENT_RAISE: ``cap`` (permitted and inheritable already) survives exec."""
        _prctl_libc(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)

    def capbset_drop(self, cap: int) -> None:
        """PR_CAPBSET_DROP: ``cap`` leaves the bounding set, for us and our descendants."""
        _prctl_libc(PR_CAPBSET_DROP, cap)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        """capset(2) with a v3 header: three 64-bit sets as two 32-bit words each."""
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in range(2):
            shift = 32 * i
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        if _capset(byref(hdr), data) != 0:
            raise _oserror("capset")

    def seccomp_load_prctl(self, bpf: bytes) -> None:
        """A caller's raw program through ``prctl(PR_SET_SECCOMP)``, as bubblewrap loads them.

        Not the seccomp syscall: an allowlist already loaded may permit
        ``prctl`` but not ``seccomp`` (bubblewrap's own tests stack such).
        """
        if len(bpf) % 8 or not bpf:
            raise OSError(22, "invalid BPF program length", "prctl(PR_SET_SECCOMP)")
        buf = string_buffer(bpf)
        prog = _SockFprog(len(bpf) // 8, addressof(buf))
        if _prctl_raw(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, addressof(prog), 0, 0) != 0:
            raise _oserror("prctl(PR_SET_SECCOMP)")

    def seccomp_load(self, bpf: bytes) -> None:
        """Install a compiled classic-BPF program on the calling thread."""
        if len(bpf) % 8 or not bpf:
            raise OSError(22, "invalid BPF program length", "seccomp")
        buf = string_buffer(bpf)
        prog = _SockFprog(len(bpf) // 8, addressof(buf))
        r = _syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, 0, byref(prog))
        if r != 0:
            raise _oserror("seccomp")

    def landlock_abi(self) -> int:
        r = int(_syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION))
        if r < 0:
            raise _oserror("landlock_create_ruleset")
        return r

    def landlock_scope(self, scoped: int) -> None:
        """Restrict the calling thread to a landlock domain with only scopes set."""
        attr = _LandlockAttr(0, 0, scoped)
        fd = int(_syscall(SYS_LANDLOCK_CREATE_RULESET, byref(attr), 24, 0))
        if fd < 0:
            raise _oserror("landlock_create_ruleset")
        try:
            if _syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0) != 0:
                raise _oserror("landlock_restrict_self")
        finally:
            os.close(fd)

    # -- mounts ------------------------------------------------------------------
    def mount(self, source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
        if (
            _mount(
                _b(source),
                _b(target),
                _b(fstype) if fstype else None,
                flags,
                _b(data) if data else None,
            )
            != 0
        ):
            raise MountError(source, target, fstype, flags, data, _errno())

    def umount2(self, target: str, flags: int) -> None:
        if _umount2(_b(target), flags) != 0:
            raise PathError("unmount", target, _errno())

    def pivot_root(self, new_root: str, put_old: str) -> None:
        if _syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)) != 0:
            raise PathError("pivot_root", new_root, _errno())

    # -- mounts by file descriptor ---------------------------------------------------
    def openat2(self, dirfd: int, path: str, flags: int, resolve: int) -> int:
        """openat2(2): ``path`` under ``dirfd`` with the given RESOLVE_* restrictions.

        With RESOLVE_IN_ROOT the kernel fails a ``..`` step with EAGAIN if any
        rename or mount happened anywhere on the machine meanwhile, and asks
        the caller to retry: another container doing either in a loop must
        not fail this one's setup.  The bound only stops an endless loop.
        """
        how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
        raw = _b(path)
        for _ in range(_OPENAT2_TRIES):
            fd = int(_syscall(SYS_OPENAT2, dirfd, raw, byref(how), sizeof(how)))
            if fd >= 0:
                return fd
            err = _errno()
            if err != errno.EAGAIN:
                break
        raise OSError(err, os.strerror(err), path)

    def open_tree(self, path: str, recursive: bool) -> int:
        """A detached copy of the mount tree at ``path`` (a bind not yet attached anywhere)."""
        flags = OPEN_TREE_CLONE | os.O_CLOEXEC | (AT_RECURSIVE if recursive else 0)
        fd = int(_syscall(SYS_OPEN_TREE, -100, _b(path), flags))
        if fd < 0:
            raise PathError("bind", path, _errno())
        return fd

    def open_tree_fd(self, fd: int, recursive: bool) -> int:
        """A detached copy of the mount tree at exactly what ``fd`` refers to.

        ``AT_EMPTY_PATH`` on the fd itself: no name is looked up, so a
        directory renamed or unlinked since the fd was opened is still the
        one bound (a ``/proc/self/fd/N`` readlink string would name another).
        """
        flags = OPEN_TREE_CLONE | os.O_CLOEXEC | AT_EMPTY_PATH
        if recursive:
            flags |= AT_RECURSIVE
        tree = int(_syscall(SYS_OPEN_TREE, fd, b"", flags))
        if tree < 0:
            raise PathError("bind", f"/proc/self/fd/{fd}", _errno())
        return tree

    def move_mount(self, from_fd: int, to_fd: int) -> None:
        """Attach the detached mount ``from_fd`` onto exactly the file ``to_fd`` refers to."""
        flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
        if _syscall(SYS_MOVE_MOUNT, from_fd, b"", to_fd, b"", flags) != 0:
            err = _errno()
            raise OSError(err, os.strerror(err), "move_mount")

    def fsmount(self, fstype: str, source: str, options: dict[str, str], attrs: int) -> int:
        """A new, detached filesystem mount (fsopen, fsconfig, fsmount); the caller attaches it."""
        fs = int(_syscall(SYS_FSOPEN, _b(fstype), FSOPEN_CLOEXEC))
        if fs < 0:
            raise MountError(source, "", fstype, 0, "", _errno())
        try:
            for key, value in (("source", source), *options.items()):
                if _syscall(SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, _b(key), _b(value), 0) != 0:
                    raise MountError(source, "", fstype, 0, f"{key}={value}", _errno())
            if _syscall(SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0) != 0:
                raise MountError(source, "", fstype, 0, "", _errno())
            fd = int(_syscall(SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, attrs))
            if fd < 0:
                raise MountError(source, "", fstype, 0, "", _errno())
            return fd
        finally:
            os.close(fs)

    def setattr_fd(self, fd: int, attrs: int, recursive: bool) -> None:
        """mount_setattr(2) on exactly the mount ``fd`` is the root of; only adds attributes."""
        attr = _MountAttr(attrs, 0, 0, 0)
        flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
        r = _syscall(SYS_MOUNT_SETATTR, fd, b"", flags, byref(attr), sizeof(attr))
        if r != 0:
            err = _errno()
            raise OSError(err, os.strerror(err), "mount_setattr")

    def mount_here(self, fd: int, source: str, fstype: str, flags: int, data: str = "") -> None:
        """mount(2) onto the directory ``fd`` itself: enter it and mount on ``.``.

        mount(2) has no dirfd; ``.`` names the working directory's own dentry,
        so no name is looked up and no symlink can redirect the mount.  The
        working directory is restored afterwards.
        """
        back = os.open(".", os.O_PATH | os.O_CLOEXEC)
        try:
            os.fchdir(fd)
            self.mount(source, ".", fstype, flags, data)
        finally:
            os.fchdir(back)
            os.close(back)

    def is_mount_root(self, fd: int) -> bool:
        """statx(2) STATX_ATTR_MOUNT_ROOT: whether ``fd`` is the root of a mount (Linux 5.8)."""
        buf = string_buffer(256)
        if _syscall(SYS_STATX, fd, b"", AT_EMPTY_PATH, 0, buf) != 0:
            raise _oserror("statx")
        raw = bytes(buf)
        attributes = int.from_bytes(raw[8:16], "little")
        mask = int.from_bytes(raw[56:64], "little")
        if not mask & STATX_ATTR_MOUNT_ROOT:
            raise OSError(38, "statx lacks STATX_ATTR_MOUNT_ROOT (Linux < 5.8)", "statx")
        return bool(attributes & STATX_ATTR_MOUNT_ROOT)

    def mkdirat(self, dirfd: int, name: str, mode: int) -> None:
        os.mkdir(name, mode, dir_fd=dirfd)

    def openat(self, dirfd: int, name: str, flags: int, mode: int = 0o777) -> int:
        return os.open(name, flags | os.O_CLOEXEC, mode, dir_fd=dirfd)

    def symlinkat(self, contents: str, dirfd: int, name: str) -> None:
        os.symlink(contents, name, dir_fd=dirfd)

    def readlinkat(self, dirfd: int, name: str) -> str:
        return os.readlink(name, dir_fd=dirfd)

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def listdir_fd(self, fd: int) -> list[str]:
        """Entries of the directory open (not O_PATH) at ``fd``, sorted."""
        return sorted(os.listdir(fd))

    # -- destinations inside the new root -------------------------------------------
    # Every op reaches its destination through these, never through a path
    # string: ``root`` is opened afresh (so a mount on "/" is seen), every
    # component is resolved by openat2 with RESOLVE_IN_ROOT (an absolute link
    # or ".." stops at the root, as it will for the program), missing
    # components are created relative to their parent's fd, and the caller
    # mounts onto the fd it gets back.  ``path`` is absolute and normalised.
    def open_in(self, root: str, path: str, flags: int) -> int:
        """Open ``path`` as the program would see it under ``root`` (no magic links)."""
        rootfd = self.open(root, os.O_PATH | os.O_DIRECTORY)
        try:
            return self._open_in(rootfd, path, flags)
        finally:
            self.close(rootfd)

    def _open_in(self, rootfd: int, path: str, flags: int) -> int:
        try:
            return self.openat2(rootfd, path.lstrip("/") or ".", flags, IN_ROOT)
        except OSError as e:
            raise PathError("resolve", path, e.errno or 0) from None

    def mkdir_in(self, root: str, path: str, perm: int, parent_perm: int) -> int:
        """O_PATH fd of directory ``path`` under ``root``; missing ones are created.

        Missing parents get ``parent_perm`` and a missing leaf ``perm`` (init's
        umask is 0); an existing directory is kept as it is, like ``mkdir -p``.
        """
        rootfd = self.open(root, os.O_PATH | os.O_DIRECTORY)
        try:
            return self._mkdir_in(rootfd, path, perm, parent_perm)
        finally:
            self.close(rootfd)

    def _mkdir_in(self, rootfd: int, path: str, perm: int, parent_perm: int) -> int:
        flags = os.O_PATH | os.O_DIRECTORY
        try:
            return self.openat2(rootfd, path.lstrip("/") or ".", flags, IN_ROOT)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise PathError("resolve", path, e.errno or 0) from None
        parent, name = path.rsplit("/", 1)
        pfd = self._mkdir_in(rootfd, parent or "/", parent_perm, parent_perm)
        try:
            try:
                self.mkdirat(pfd, name, perm)
            except FileExistsError:
                pass  # made meanwhile, or a link there: resolved below
            except OSError as e:
                raise PathError("create directory", path, e.errno or 0) from None
            return self._child(rootfd, pfd, path, name, flags)
        finally:
            self.close(pfd)

    def _child(self, rootfd: int, pfd: int, path: str, name: str, flags: int) -> int:
        """``name`` in the parent ``pfd``: itself if no link, else resolved in the root."""
        try:
            return self.openat2(pfd, name, flags, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno != errno.ELOOP:  # anything but a symlink at name
                raise PathError("resolve", path, e.errno or 0) from None
        return self._open_in(rootfd, path, flags)

    def file_in(self, root: str, path: str, perm: int, parent_perm: int) -> int:
        """O_PATH fd of the non-directory ``path`` under ``root``; an empty file if missing."""
        rootfd = self.open(root, os.O_PATH | os.O_DIRECTORY)
        try:
            try:
                fd = self.openat2(rootfd, path.lstrip("/") or ".", os.O_PATH, IN_ROOT)
            except FileNotFoundError:
                fd = self._new_file(rootfd, path, perm, parent_perm)
            except OSError as e:
                raise PathError("resolve", path, e.errno or 0) from None
        finally:
            self.close(rootfd)
        try:
            if stat.S_ISDIR(self.fstat(fd).st_mode):
                raise PathError("mount a file on", path, errno.EISDIR)
        except BaseException:
            self.close(fd)
            raise
        return fd

    def _new_file(self, rootfd: int, path: str, perm: int, parent_perm: int) -> int:
        parent, name = path.rsplit("/", 1)
        pfd = self._mkdir_in(rootfd, parent or "/", parent_perm, parent_perm)
        try:
            # O_NOFOLLOW|O_NONBLOCK: never follow a link, never wait on a FIFO.
            flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            try:
                self.close(self.openat(pfd, name, flags, perm))
            except FileExistsError:
                pass  # made meanwhile, or a link there: resolved below
            except OSError as e:
                raise PathError("create file", path, e.errno or 0) from None
            return self._child(rootfd, pfd, path, name, os.O_PATH)
        finally:
            self.close(pfd)

    def symlink_in(self, root: str, contents: str, path: str, parent_perm: int) -> None:
        """Create the link ``path`` under ``root``; its parents are resolved and made in root.

        An existing link with the same contents counts as created (bubblewrap
        >= 0.9 accepts ``--symlink`` twice); any other existing entry is EEXIST.
        """
        parent, name = path.rsplit("/", 1)
        pfd = self.mkdir_in(root, parent or "/", parent_perm, parent_perm)
        try:
            self.symlinkat(contents, pfd, name)
        except FileExistsError:
            # The same link already there is fine (bubblewrap >= 0.9); anything else is
            # not, and the message says what is there, in bubblewrap's words.
            try:
                existing: str | None = self.readlinkat(pfd, name)
            except OSError:  # not a link (EINVAL), say
                existing = None
            if existing != contents:
                raise SymlinkExistsError(path, existing) from None
        except OSError as e:
            raise PathError("create symlink", path, e.errno or 0) from None
        finally:
            self.close(pfd)

    # -- files and directories ----------------------------------------------------
    def chdir(self, path: str) -> None:
        os.chdir(path)

    def fchdir(self, fd: int) -> None:
        os.fchdir(fd)

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        return os.open(path, flags | os.O_CLOEXEC, mode)

    def close(self, fd: int) -> None:
        os.close(fd)

    def chmod(self, path: str, mode: int) -> None:
        """chmod(2); the ops pass a ``/proc/self/fd/N`` magic link to an fd resolved in-root."""
        os.chmod(path, mode)

    def lock_shared(self, fd: int) -> None:
        """A whole-file fcntl read lock on ``fd``, not waiting (F_SETLK, F_RDLCK).

        A POSIX record lock, as bubblewrap's ``--lock-file`` takes: it is the
        process's, held until the process exits or closes *any* fd of the file.
        """
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(path, mode)

    def makedirs(self, path: str, mode: int) -> None:
        """Go ``os.MkdirAll``: create missing directories with ``mode``; existing is fine.

        Not ``os.makedirs``: since Python 3.7 it creates intermediate
        directories with 0777 & ~umask, and init runs with umask 0, which
        would leave world-writable parents where Go leaves 0700.
        """
        _mkdir_all(path, mode)

    def symlink(self, contents: str, path: str) -> None:
        os.symlink(contents, path)

    def readlink(self, path: str) -> str:
        return os.readlink(path)

    def realpath(self, path: str) -> str:
        """Go ``filepath.EvalSymlinks``: resolve every link; a missing path is an error."""
        return os.path.realpath(path, strict=True)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def lstat(self, path: str) -> os.stat_result:
        return os.lstat(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def remove(self, path: str) -> None:
        os.unlink(path)

    def umask(self, mask: int) -> int:
        return os.umask(mask)

    def isatty(self, fd: int) -> bool:
        return os.isatty(fd)

    # -- the program's terminal (init/pty.py) --------------------------------------
    def pty_master(self, ptmx: str) -> tuple[int, int]:
        """Open a new pty master at ``ptmx`` and unlock its slave: (master fd, pty number).

        ``O_NOCTTY``: init must never acquire it as its own controlling terminal.
        """
        fd = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, _TIOCSPTLCK, (0).to_bytes(4, sys.byteorder))
            got = fcntl.ioctl(fd, _TIOCGPTN, bytes(4))
        except OSError:
            os.close(fd)
            raise
        return fd, int.from_bytes(got, sys.byteorder)

    def set_winsize(self, fd: int, rows: int, cols: int) -> None:
        """``TIOCSWINSZ``: struct winsize is four unsigned shorts (rows, cols, x, y pixels)."""
        raw = rows.to_bytes(2, sys.byteorder) + cols.to_bytes(2, sys.byteorder) + bytes(4)
        fcntl.ioctl(fd, _TIOCSWINSZ, raw)

    def send_fd(self, sock: int, fd: int) -> None:
        """Pass ``fd`` over the unix socket ``sock`` (one byte plus ``SCM_RIGHTS``)."""
        s = _socket.socket(fileno=sock)
        try:
            cmsg = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))
            s.sendmsg([b"m"], [cmsg])
        finally:
            s.detach()
