"""The caller's side of the fork server (the server is ``init/forkserver.py``, which clones
each container's init).

One server per calling process, spawned on first use (or ahead, with
``prestart()``) as a cold shim would be: ``posix_spawn`` of ``-I -S``, signal
dispositions reset, /dev/null for stdio, one end of a private
``SOCK_SEQPACKET`` socketpair at fd 3.  A start is then one request and one
reply on that socket, serialised by a lock (threads and trio tasks alike:
the reply is the fork's, well under a millisecond, so holding the lock
across it never stalls anyone long, and no two readers ever share the fd).

Before each request the caller compares its restrictions with the server's:
if this thread has since gained no_new_privs, a seccomp filter, a Landlock
domain, fewer capabilities, other ids or another cgroup, the old server is
retired (it exits once its containers have) and a new one is spawned from
here, inheriting the tighter state.  A ``fork()``ed child never uses its
parent's server (``os.register_at_fork``).
"""

from __future__ import annotations

import _socket
import _thread
import fcntl
import os
import select
from array import array

import msgpack

from .errors import ServerLostError, StartError
from .process import ServedProcess
from .spawn import init_argv, socketpair

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .wire import Setup

#: Protocol version (init/forkserver.py ``VERSION``).
VERSION = 1
SERVER_FD = 3
#: Most fds one request may carry (setup socket, cwd, stdio, extra files).
MAX_FDS = 250
#: RLIM_NLIMITS on Linux: every resource limit travels.
RLIMITS = 16
_CODE = "import sys;sys.path[0:0]=sys.argv[1:];from hakurei.init.forkserver import main;main()"

#: /proc/thread-self/status lines that must match the server's (see module docstring).
_COMPARED = (
    b"Uid:",
    b"Gid:",
    b"Groups:",
    b"CapInh:",
    b"CapPrm:",
    b"CapEff:",
    b"CapBnd:",
    b"CapAmb:",
    b"NoNewPrivs:",
    b"Seccomp:",
    b"Seccomp_filters:",
)


class Unavailable(Exception):
    """This start cannot go through a fork server; the caller falls back to a cold spawn."""


class _Server:
    """A running server: our socket, its pid and pidfd, the state it was started in."""

    def __init__(self, restrictions: bytes) -> None:
        ours, theirs = _socket.socketpair(
            _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC
        )
        self.sock = ours
        argv = init_argv(_CODE)
        import _signal

        reset = _signal.valid_signals() - {_signal.SIGKILL, _signal.SIGSTOP}
        try:
            stage = fcntl.fcntl(theirs.fileno(), fcntl.F_DUPFD_CLOEXEC, SERVER_FD + 1)
            try:
                self.pid = os.posix_spawn(
                    argv[0],
                    argv,
                    {"HAKUREI_FORKSERVER": str(SERVER_FD), "HAKUREI_CALLER": str(os.getpid())},
                    file_actions=[
                        *((os.POSIX_SPAWN_OPEN, fd, "/dev/null", os.O_RDWR, 0) for fd in (0, 1, 2)),
                        (os.POSIX_SPAWN_DUP2, stage, SERVER_FD),
                    ],
                    setsigmask=(),
                    setsigdef=reset,
                )
            finally:
                os.close(stage)
                theirs.close()
        except OSError as e:
            ours.close()
            raise Unavailable(e) from None
        self.pidfd = os.pidfd_open(self.pid)
        self.restrictions = restrictions

    def alive(self, timeout: float = 0) -> bool:
        """Whether the server has not exited (waiting up to ``timeout`` seconds for it to)."""
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return not poller.poll(timeout * 1000)

    def ask(self, request: bytes, fds: list[int]) -> tuple[int, int, int]:
        """Send one request; (pid, pidfd, status fd) of the cloned init.

        ``ServerLostError`` if the server is gone before it answered;
        ``StartError`` with its message if it refused.
        """
        try:
            self.sock.sendmsg(
                [request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array("i", fds))]
            )
        except OSError as e:
            raise ServerLostError("send to the fork server", e) from None
        # Blocking: the answer is a fork away.  A server that dies closes its
        # end, so this returns end of stream rather than waiting forever.
        try:
            data, anc, _, _ = self.sock.recvmsg(
                4096, _socket.CMSG_SPACE(2 * 4), _socket.MSG_CMSG_CLOEXEC
            )
        except OSError as e:  # ECONNRESET: it died with our request unread
            raise ServerLostError("hear from the fork server", e) from None
        got: list[int] = []
        for level, kind, payload in anc:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                got.extend(array("i", payload[: len(payload) - len(payload) % 4]))
        if not data:
            for fd in got:
                os.close(fd)
            raise ServerLostError("the fork server exited before it answered")
        reply = msgpack.unpackb(data)
        if len(reply) == 1 and len(got) == 2:
            return int(reply[0]), got[0], got[1]
        for fd in got:
            os.close(fd)
        raise StartError(str(reply[-1]))

    def retire(self) -> None:
        """Close our end (the server exits once its containers have) and reap it if it is gone."""
        self.sock.close()
        _retired.append(self)
        _reap_retired()

    def reaped(self) -> bool:
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # the caller ignores SIGCHLD: the kernel reaped it
            pid = self.pid
        if pid:
            os.close(self.pidfd)
        return bool(pid)


_lock = _thread.allocate_lock()
_server: _Server | None = None
_retired: list[_Server] = []
#: no container started by default in this process yet (see first_start)
_first = True


def _reap_retired() -> None:
    _retired[:] = [s for s in _retired if not s.reaped()]


def _forget() -> None:
    """In a fork()ed child: the parent's server is not ours (its pidfd watches the parent)."""
    global _server, _lock, _first
    _lock = _thread.allocate_lock()
    _first = True
    old, _server = _server, None
    if old is not None:
        old.sock.close()
        os.close(old.pidfd)
    for s in _retired:
        os.close(s.pidfd)
    _retired.clear()


os.register_at_fork(after_in_child=_forget)


def _status() -> bytes:
    fd = os.open("/proc/thread-self/status", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _restrictions(status: bytes) -> bytes:
    """What must not differ between this thread and the server (see the module docstring)."""
    lines = [line for line in status.split(b"\n") if line.startswith(_COMPARED)]
    fd = os.open("/proc/self/cgroup", os.O_RDONLY | os.O_CLOEXEC)
    try:
        lines.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    return b"\n".join(lines)


def _field(status: bytes, name: bytes, base: int) -> int:
    start = status.index(b"\n" + name) + len(name) + 1
    return int(status[start : status.index(b"\n", start)].strip(), base)


def _within_landlock(server: _Server) -> bool:
    """Whether this thread may still reach the server: a Landlock domain gained since
    forbids ptrace-style access to processes outside it (the readlink is refused)."""
    try:
        os.readlink(f"/proc/{server.pid}/exe")
    except PermissionError:
        return False
    except OSError:
        pass  # gone: alive() says so
    return True


def _current(restrictions: bytes) -> _Server:
    """The server to use (lock held): the running one if it is alive and no looser than us."""
    global _server
    server = _server
    if server is not None and (
        server.restrictions != restrictions or not server.alive() or not _within_landlock(server)
    ):
        server.retire()
        server = _server = None
    if server is None:
        server = _server = _Server(restrictions)
    return server


def enabled() -> bool:
    """The default for library starts: the fork server, unless ``HAKUREI_FORKSERVER=0``."""
    return os.environ.get("HAKUREI_FORKSERVER", "1") != "0"


def forget_dead() -> None:
    """After a container lost its server: retire and reap the server if it is dead.

    Without this a killed server would stay a zombie child until the next start.
    """
    global _server
    with _lock:
        # Its sockets close a moment before it can be reaped: wait for that moment.
        if _server is not None and not _server.alive(timeout=1.0):
            _server.retire()
            _server = None
        _reap_retired()


def would_start_server(fork_server: bool | None) -> bool:
    """Whether ``spawn.spawn(..., fork_server=fork_server)`` would now spawn a server and
    wait for its first answer (the trio face waits for that in a thread)."""
    wanted = enabled() if fork_server is None else fork_server
    return wanted and _server is None and not (fork_server is None and _first)


def first_start() -> bool:
    """True once per process (and per fork()ed child), if no server runs yet: the default
    first start goes cold and spawns nothing."""
    global _first
    first, _first = _first and _server is None, False
    return first


def prestart() -> bool:
    """Start this process's fork server now, so the first container starts fast too.

    Returns False if it cannot run here or ``HAKUREI_FORKSERVER=0`` opts out
    (the starts stay cold).  Without it a process's first container starts
    cold and the second one starts the server.
    """
    if not enabled():
        return False
    with _lock:
        try:
            _current(_restrictions(_status()))
        except Unavailable:
            return False
    return True


def spawn(setup: Setup, fds: list[int | None], record: bytes | None = None) -> ServedProcess:
    """The init of ``setup``'s container, cloned by the server with ``fds`` (``spawn.stdio_fds``)
    as its 0-2 and 4...; it waits for the record on its setup socket."""
    global _server
    if len(fds) + 2 > MAX_FDS:
        raise Unavailable("too many fds for one request")
    status = _status()
    import resource

    limits = [[res, *resource.getrlimit(res)] for res in range(RLIMITS)]
    targets: list[int] = []
    sources: list[int] = []
    opened: list[int] = []
    ours, theirs = socketpair(record)
    try:
        try:
            cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:  # a cold spawn inherits a cwd it could not open: go cold
            raise Unavailable(e) from None
        opened.append(cwd)
        for i, fd in enumerate(fds):
            if fd is None:
                if i < 3:
                    continue  # the server opens /dev/null there
                fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
                opened.append(fd)
            targets.append(i if i < 3 else i + 1)
            sources.append(fd)
        request = msgpack.packb(
            [
                VERSION,
                targets,
                _field(status, b"Umask:", 8),
                os.getpriority(os.PRIO_PROCESS, 0),
                sorted(os.sched_getaffinity(0)),
                limits,
                _field(status, b"SigIgn:", 16),
                [setup.uid, setup.gid, setup.host_uid, setup.host_gid],
                setup.host_net,
            ]
        )
        restrictions = _restrictions(status)
        with _lock:
            for attempt in (1, 2):
                server = _current(restrictions)
                try:
                    pid, pidfd, exit_fd = server.ask(request, [theirs, cwd, *sources])
                    break
                except ServerLostError:
                    if attempt == 2:
                        raise
                    server.retire()  # died (SIGKILLed?): the next try spawns a new one
                    _server = None
    except BaseException:
        os.close(ours)
        raise
    finally:
        for fd in (theirs, *opened):
            os.close(fd)
    return ServedProcess(pid, pidfd, ours, exit_fd, preloaded=record is not None)


__all__ = [
    "Unavailable",
    "enabled",
    "first_start",
    "forget_dead",
    "prestart",
    "spawn",
    "would_start_server",
]
