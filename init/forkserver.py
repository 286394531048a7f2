"""The fork server: one per calling process, forks a ready shim for each container.

A cold start spends most of its time starting an interpreter and importing
the init path (~20 ms); the container work itself is a few ms.  The caller
(``hakurei/forkserver.py``) spawns this once, with ``-I -S`` and its own
sockets, and every start after that is one ``fork`` of this already-imported,
``gc.freeze()``d process.

Why it is safe:

* **single-threaded**, so ``fork`` is safe and ``PR_SET_PDEATHSIG`` in a
  child names this whole process: the server SIGKILLed → every shim gets
  SIGKILL, and each init dies with its shim (its own pdeathsig);
* **its caller only**: it talks over a private ``SOCK_SEQPACKET`` socketpair
  it inherited (no path, no abstract name), watches the caller through a
  pidfd and, when the caller is gone, SIGKILLs every shim and exits; each shim
  also watches the caller itself, as a cold shim does;
* **no fds kept**: a request's fds (setup socket, stdio, extra files, cwd)
  are closed in the server as soon as the child is forked; the child keeps
  only what a cold shim would have (``shim.keep_only``);
* **the caller's state travels in every request** (what a cold ``posix_spawn``
  would have inherited at that moment: umask, rlimits, nice, CPU affinity,
  ignored signals, working directory), and the caller checks before each
  request that it has not become more restricted than the server (no_new_privs,
  seccomp, capabilities, ids, cgroup, Landlock), starting a new server if it
  has;
* the exit status of each shim comes back to the caller as a message on a
  socket this server creates per container (the caller cannot ``waitid`` a
  process that is not its child); end of stream without a status means this
  server died.

Request (one datagram): msgpack ``[version, targets, umask, nice, cpus,
rlimits, ignored]`` with fds ``[setup, cwd, *sources]``: ``sources[i]`` goes to
fd ``targets[i]``; a stdio target not listed gets /dev/null.  Reply:
msgpack ``[pid]`` with fds ``[pidfd, status socket]``, or ``["error", text]``.
"""

from __future__ import annotations

import _signal
import _socket
import gc
import os
import select
from array import array

import msgpack

from ..errors import describe, safe_line
from . import shim
from .kernel import PR_SET_PDEATHSIG, Kernel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

VERSION = 1
#: The server's socket to its caller, as the caller lays it out.
SERVER_FD = 3
#: Most fds one request carries (the kernel's SCM_MAX_FD is 253).
MAX_FDS = 250
SETUP_FD = 3
SIGKILL = 9
#: Signals never touched: SIGKILL, SIGSTOP, and glibc's internal 32 and 33.
_UNTOUCHABLE = (9, 19, 32, 33)


def _request_error(text: str) -> bytes:
    return msgpack.packb(["error", safe_line(text)])  # type: ignore[no-any-return]


class Server:
    """The server's state: its socket, the caller's pidfd, and the live shims."""

    def __init__(self, k: Kernel, sock: int, caller: int) -> None:
        self.k = k
        self.sock = _socket.socket(fileno=sock)
        self.caller = caller
        self.caller_fd = k.pidfd_open(caller)
        if os.getppid() != caller:  # the caller died before we could watch it
            os._exit(0)
        self.pid = os.getpid()
        #: pid → our end of that shim's status socket
        self.children: dict[int, int] = {}
        #: the dispositions a fresh interpreter starts with, to give each child
        self.initial = {
            sig: _signal.getsignal(sig) for sig in range(1, _signal.NSIG) if sig not in _UNTOUCHABLE
        }

    def serve(self) -> NoReturn:
        """Fork a shim per request until the caller is gone and every shim is reaped."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.signal(_signal.SIGCHLD, _noop)
        _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.caller_fd, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        serving = True
        gc.freeze()  # what is imported stays shared with every child, untouched by gc
        while serving or self.children:
            for fd, _ in poller.poll():
                if fd == self.caller_fd:
                    self.die()
                elif fd == wake_r:
                    while len(os.read(wake_r, 64)) == 64:
                        pass
                    self.reap()
                elif not self.request():
                    # End of stream: the caller closed its end (a newer server
                    # replaced us).  Reap what runs, then go.
                    poller.unregister(fd)
                    serving = False
            if not serving:
                self.reap()
        os._exit(0)

    def die(self) -> NoReturn:
        """The caller is gone: nobody can use our containers.  Kill them all, now."""
        for pid in self.children:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(0)

    def reap(self) -> None:
        """Collect every exited shim and tell its caller the status."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = self.children.pop(pid, None)
            if fd is None:
                continue
            try:
                os.write(fd, b"%d" % shim.status_of(status))
            except OSError:
                pass  # the caller closed its end: nobody is waiting
            os.close(fd)

    def request(self) -> bool:
        """Serve one request; False at end of stream."""
        try:
            data, anc, _, _ = self.sock.recvmsg(
                1 << 16, _socket.CMSG_SPACE(MAX_FDS * 4), _socket.MSG_CMSG_CLOEXEC
            )
        except (BlockingIOError, InterruptedError):
            return True
        fds: list[int] = []
        for level, kind, payload in anc:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(memoryview(payload)[:usable].cast("i"))
        if not data and not fds:
            return False
        try:
            reply, out = self.fork(data, fds)
        finally:
            for fd in fds:
                os.close(fd)
        try:
            self.sock.sendmsg(
                [reply], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, out)] if out else []
            )
        except OSError:
            pass  # the caller is gone; its pidfd wakes us next
        finally:
            for fd in array("i", out):
                os.close(fd)
        return True

    def fork(self, data: bytes, fds: list[int]) -> tuple[bytes, bytes]:
        """Check a request and fork its shim: (reply, fds to send as raw bytes)."""
        try:
            req = msgpack.unpackb(data)
            version, targets, umask, nice, cpus, rlimits, ignored = req
            if version != VERSION:
                return _request_error(f"fork server speaks version {VERSION}, not {version}"), b""
            if len(fds) != 2 + len(targets):
                return _request_error("fork server: fds and targets do not match"), b""
        except Exception as e:  # a malformed request must not end the server
            return _request_error(f"fork server: bad request: {describe(e)}"), b""
        pid = os.fork()
        if pid == 0:
            try:
                self.child(fds, targets, umask, nice, cpus, rlimits, ignored)
            except BaseException as e:
                os.write(2, f"hakurei: fork server: {safe_line(describe(e))}\n".encode())
            finally:
                os._exit(125)
        pidfd = self.k.pidfd_open(pid)
        ours, theirs = _socket.socketpair(
            _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC
        )
        self.children[pid] = ours.detach()
        return msgpack.packb([pid]), array("i", [pidfd, theirs.detach()]).tobytes()

    def child(
        self,
        fds: list[int],
        targets: list[int],
        umask: int,
        nice: int,
        cpus: list[int],
        rlimits: list[list[int]],
        ignored: int,
    ) -> NoReturn:
        """In the forked child: become what a cold shim would be, then be the shim."""
        k = self.k
        k.prctl(PR_SET_PDEATHSIG, SIGKILL)
        if os.getppid() != self.pid:  # the server died between fork and prctl
            os._exit(125)
        _signal.set_wakeup_fd(-1)
        for sig, handler in self.initial.items():
            want = _signal.SIG_IGN if ignored >> (sig - 1) & 1 else handler
            try:
                _signal.signal(sig, want)
            except (OSError, ValueError, TypeError):
                pass  # a signal Python may not set: it keeps the server's
        setup, cwd, *sources = fds
        place(k, [setup, *sources], [SETUP_FD, *targets])
        k.fchdir(cwd)
        os.close(cwd)
        k.umask(umask)
        import resource

        for res, soft, hard in rlimits:
            if resource.getrlimit(res) != (soft, hard):
                resource.setrlimit(res, (soft, hard))
        if os.getpriority(os.PRIO_PROCESS, 0) != nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        if cpus and os.sched_getaffinity(0) != set(cpus):
            os.sched_setaffinity(0, cpus)
        os.environ["HAKUREI_SETUP"] = str(SETUP_FD)
        shim.main(watch=(self.caller, self.caller_fd))


def place(k: Kernel, sources: list[int], targets: list[int]) -> None:
    """dup2 each source to its target (the cold layout); stdio not given gets /dev/null.

    Every source is first moved above every target, so no dup2 overwrites a
    source still to be placed.
    """
    floor = max([*targets, 2]) + 1
    high = [os.dup(fd) if fd >= floor else _above(fd, floor) for fd in sources]
    for fd, target in zip(high, targets, strict=True):
        os.dup2(fd, target)  # inheritable, like the cold layout
    for fd in high:
        os.close(fd)
    for target in (0, 1, 2):
        if target not in targets:
            null = os.open("/dev/null", os.O_RDWR)
            if null != target:
                os.dup2(null, target)
                os.close(null)


def _above(fd: int, floor: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _noop(signum: int, frame: object) -> None:
    """SIGCHLD must have a handler to reach the wakeup fd."""


def main() -> NoReturn:
    """Entry (``-I -S``): ``HAKUREI_FORKSERVER`` names the socket fd, ``HAKUREI_CALLER`` the pid."""
    try:
        sock = int(os.environ["HAKUREI_FORKSERVER"])
        caller = int(os.environ["HAKUREI_CALLER"])
    except (KeyError, ValueError):
        os.write(2, b"hakurei: the fork server is started by the library, not by hand\n")
        os._exit(125)
    os.environ.pop("HAKUREI_FORKSERVER")
    os.environ.pop("HAKUREI_CALLER")
    k = Kernel()
    k.set_name("hakurei-forksrv")
    _preload()
    Server(k, sock, caller).serve()


def _preload() -> None:
    """Import now what a shim and init would import on their way, so no child imports."""
    import fcntl  # noqa: F401
    import resource  # noqa: F401

    from . import init, pty  # noqa: F401


__all__ = ["Server", "main", "place"]
