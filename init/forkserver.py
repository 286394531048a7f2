"""The fork server: one per calling process, clones each container's init.

A cold start spends most of its time starting an interpreter and importing
the init path (~20 ms); the container work itself is a few ms.  The caller
(``hakurei/forkserver.py``) spawns this once, with ``-I -S`` and its own
sockets, and every start after that is one ``clone3`` of this
already-imported, ``gc.freeze()``d process, with the namespace flags: the
child is init, PID 1 of its new pid namespace, at birth.  There is no shim:
the server writes the child's id maps from outside (the one-line maps an
unprivileged parent may write), and does the shim's other jobs for all its
containers at once (watch the caller, report each exit status).

Why it is safe:

* **single-threaded**, so a fork-like clone is safe without CPython's
  after-fork hooks (no other thread, no lock held, nothing registered), and
  ``PR_SET_PDEATHSIG`` in a child names this whole process: the server
  SIGKILLed → every init gets SIGKILL, and the whole container with it;
* **its caller only**: it talks over a private ``SOCK_SEQPACKET`` socketpair
  it inherited (no path, no abstract name), watches the caller through a
  pidfd and, when the caller is gone, SIGKILLs every init and exits;
* **no fds kept**: a request's fds (setup socket, stdio, extra files, cwd)
  are closed in the server as soon as the child is cloned; the child keeps
  only what a cold shim's init would have (``shim.keep_only``);
* **the caller's state travels in every request** (what a cold ``posix_spawn``
  would have inherited at that moment: umask, rlimits, nice, CPU affinity,
  ignored signals, working directory), and the caller checks before each
  request that it has not become more restricted than the server (no_new_privs,
  seccomp, capabilities, ids, cgroup, Landlock), starting a new server if it
  has;
* the exit status of each init comes back to the caller as a message on a
  socket this server creates per container (the caller cannot ``waitid`` a
  process that is not its child); end of stream without a status means this
  server died.

Request (one datagram): msgpack (read with ``hakurei.msgcodec``, as the setup
record is: no msgpack import here) ``[version, targets, umask, nice, cpus,
rlimits, ignored, [uid, gid, host_uid, host_gid], host_net]`` with fds
``[setup, cwd, *sources]``: ``sources[i]`` goes to fd ``targets[i]``; a stdio
target not listed gets /dev/null.  The ids and host_net make the namespaces
and maps; the setup record, read by init from the setup socket, must agree.
Reply: msgpack ``[pid]`` with fds ``[pidfd, status socket]``, or ``["error", text]``.
"""

from __future__ import annotations

import _signal
import _socket
import fcntl
import gc
import os
import select
from array import array

from ..errors import describe, safe_line
from ..msgcodec import packb, unpackb
from . import init as _init
from . import shim
from .kernel import SI_KERNEL, Kernel

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
    return packb(["error", safe_line(text)])


class Server:
    """The server's state: its socket, the caller's pidfd, and the live inits."""

    def __init__(self, k: Kernel, sock: int, caller: int) -> None:
        self.k = k
        self.sock = _socket.socket(fileno=sock)
        self.caller = caller
        self.caller_fd = k.pidfd_open(caller)
        if os.getppid() != caller:  # the caller died before we could watch it
            self.k.exit(0)
        self.pid = os.getpid()
        #: init's pid → our end of its status socket, the write end of its alive pipe
        self.children: dict[int, tuple[int, int]] = {}
        #: the dispositions a fresh interpreter starts with, to give each child
        self.initial = {
            sig: _signal.getsignal(sig) for sig in range(1, _signal.NSIG) if sig not in _UNTOUCHABLE
        }

    def serve(self) -> NoReturn:
        """Clone an init per request until the caller is gone and every init is reaped."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.signal(_signal.SIGCHLD, _noop)
        _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.caller_fd, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        # The server shares its caller's process group, so whatever signals the
        # group (a terminal's Ctrl-C and Ctrl-Z, systemd's SIGTERM to a unit)
        # reaches it, and not its inits that lead a group of their own.  A
        # cold start's shim relays those to its init; the server does the same
        # for all of them, and neither dies nor stops itself: they stay blocked
        # and are read from a signalfd, which says who sent each (``relay``).
        # Each child gets the dispositions of a fresh interpreter back (``child``).
        sigfd = shim.relayed_signals(self.k)
        poller.register(sigfd, select.POLLIN)
        serving = True
        gc.freeze()  # what is imported stays shared with every child, untouched by gc
        while serving or self.children:
            # Signals first: one the group got before a request came must
            # reach the inits that existed then, not the one it creates.
            for fd, _ in sorted(poller.poll(), key=lambda event: event[0] not in (sigfd, wake_r)):
                if fd == self.caller_fd:
                    self.die()
                elif fd == sigfd:
                    self.relay(self.k.read_signals(sigfd))
                elif fd == wake_r:
                    _drain(wake_r)
                    self.reap()
                elif not self.request():
                    # End of stream: the caller closed its end (a newer server
                    # replaced us).  Reap what runs, then go.
                    poller.unregister(fd)
                    serving = False
            if not serving:
                self.reap()
        self.k.exit(0)

    def die(self) -> NoReturn:
        """The caller is gone: nobody can use our containers.  Kill them all, now."""
        for pid in self.children:
            try:
                self.k.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
        self.k.exit(0)

    def relay(self, signals: list[tuple[int, int]]) -> None:
        """Pass the group's signals on to every init, as each one's shim would.

        Not what the terminal sent (``SI_KERNEL``: Ctrl-C, Ctrl-\\, Ctrl-Z,
        a hangup) to an init still in our group (``retain_session``): it and
        its program are in the terminal's foreground group and got it
        themselves, so one Ctrl-C stays one.
        """
        group = os.getpgrp()
        for sig, code in signals:
            for pid in self.children:
                try:
                    if code == SI_KERNEL and os.getpgid(pid) == group:
                        continue
                    self.k.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def reap(self) -> None:
        """Collect every exited init and tell its caller the status."""
        while self.children:
            try:
                pid, status = self.k.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fds = self.children.pop(pid, None)
            if fds is None:
                continue
            try:
                os.write(fds[0], b"%d" % shim.status_of(status))
            except OSError:
                pass  # the caller closed its end: nobody is waiting
            for fd in fds:
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
        """Check a request and clone its init: (reply, fds to send as raw bytes)."""
        try:
            req = unpackb(data)
            version, targets, umask, nice, cpus, rlimits, ignored, ids, host_net = req
            if version != VERSION:
                return _request_error(f"fork server speaks version {VERSION}, not {version}"), b""
            if len(fds) != 2 + len(targets):
                return _request_error("fork server: fds and targets do not match"), b""
            uid, gid, host_uid, host_gid = (int(i) for i in ids)
        except Exception as e:  # a malformed request must not end the server
            return _request_error(f"fork server: bad request: {describe(e)}"), b""
        flags = shim.namespaces(bool(host_net))
        alive_r, alive_w = os.pipe2(os.O_CLOEXEC)
        # The relayed signals stay blocked across the clone (the server keeps them so): init
        # takes them with sigwaitinfo, and one that came before it is ready waits.
        try:
            pid, pidfd = self.k.clone_pidfd(flags)
        except OSError as e:
            os.close(alive_r)
            os.close(alive_w)
            return _request_error(f"cannot create the container's namespaces: {describe(e)}"), b""
        if pid == 0:
            try:
                alive = self.child(fds, targets, umask, nice, cpus, rlimits, ignored, alive_r)
                self.init(alive, (uid, gid, host_uid, host_gid), bool(host_net))
            except BaseException as e:
                os.write(2, f"hakurei: fork server: {safe_line(describe(e))}\n".encode())
            finally:
                self.k.exit(125)
        os.close(alive_r)
        try:
            shim.write_id_maps(self.k, uid, gid, host_uid, host_gid, f"/proc/{pid}")
            os.write(alive_w, b"m")  # the maps are there: go on
        except OSError as e:
            self.k.kill(pid, SIGKILL)
            os.close(pidfd)
            os.close(alive_w)  # it is reaped (SIGCHLD) as any other child
            return _request_error(f"cannot write id maps: {describe(e)}"), b""
        ours, theirs = _socket.socketpair(
            _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC
        )
        # The alive pipe's write end lives as long as init does here: init
        # checks it for end of file once its pdeathsig is armed (init.identity).
        self.children[pid] = (ours.detach(), alive_w)
        return packb([pid]), array("i", [pidfd, theirs.detach()]).tobytes()

    def child(
        self,
        fds: list[int],
        targets: list[int],
        umask: int,
        nice: int,
        cpus: list[int],
        rlimits: list[list[int]],
        ignored: int,
        alive_r: int,
    ) -> int:
        """In the cloned child: take on the caller's state, as a cold shim would have it.

        Returns the alive pipe's read end, moved above the fds being laid out.
        """
        k = self.k
        # No pdeathsig here: init.identity sets it, and the alive pipe's end of
        # file covers the server dying before that (as it covers a shim's death).
        _signal.set_wakeup_fd(-1)
        for sig, handler in self.initial.items():
            want = _signal.SIG_IGN if ignored >> (sig - 1) & 1 else handler
            if _signal.getsignal(sig) is not want:
                try:
                    _signal.signal(sig, want)
                except (OSError, ValueError, TypeError):
                    pass  # a signal Python may not set: it keeps the server's
        setup, cwd, *sources = fds
        alive = _above(alive_r, max([SETUP_FD, *targets]) + 1)
        os.close(alive_r)
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
        return alive

    def init(self, alive_r: int, ids: tuple[int, int, int, int], host_net: bool) -> NoReturn:
        """Be init (PID 1 already): wait for the id maps, read the record, run ``init.main``.

        What a cold shim does between its spawn and forking init, minus
        unshare (the clone made the namespaces) and the parent watch (the
        server SIGKILLs every init when its caller dies, and init's own
        pdeathsig names the single-threaded server).
        """
        k = self.k
        if os.read(alive_r, 1) != b"m":  # the server died before it wrote the maps
            self.k.exit(125)
        os.environ["HAKUREI_SETUP"] = str(SETUP_FD)
        setup, extra = shim.take_setup()
        report = shim.reporting()
        if (setup.uid, setup.gid, setup.host_uid, setup.host_gid) != ids:
            shim.fail("the setup's ids are not those this container was created with")
        if setup.host_net != host_net:
            shim.fail("the setup's host_net is not what this container was created with")
        if setup.parent_pid != self.caller:
            shim.fail(f"the setup names parent {setup.parent_pid}, not this server's caller")
        shim.keep_only([*extra, alive_r, *([report] if report >= 0 else [])], k)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        if setup.verbose:
            _init.say("shim: none, init was cloned by the fork server")
        _init.main(k, setup, extra, alive_r, report, None)


def place(k: Kernel, sources: list[int], targets: list[int]) -> None:
    """dup2 each source to its target (the cold layout); stdio not given gets /dev/null.

    Every source is first moved above every target, so no dup2 overwrites a
    source still to be placed.
    """
    floor = max([*targets, 2]) + 1
    high = [os.dup(fd) if fd >= floor else _above(fd, floor) for fd in sources]
    for fd, target in zip(high, targets, strict=True):
        k.dup2(fd, target)  # inheritable, like the cold layout
    for fd in high:
        os.close(fd)
    for target in (0, 1, 2):
        if target not in targets:
            null = os.open("/dev/null", os.O_RDWR)
            if null != target:
                k.dup2(null, target)
                os.close(null)


def _above(fd: int, floor: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _drain(fd: int) -> bytes:
    """Empty the (non-blocking) SIGCHLD wakeup pipe."""
    got = b""
    try:
        while chunk := os.read(fd, 4096):
            got += chunk
    except BlockingIOError:
        pass
    return got


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
    """Import now what init would import on its way, so no child imports."""
    import resource  # noqa: F401

    from ..ops.base import REGISTRY
    from . import init, pty  # noqa: F401

    REGISTRY.values()  # every op module: a child decodes its record without importing


__all__ = ["Server", "main", "place"]
