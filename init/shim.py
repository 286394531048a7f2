"""The shim: the exec'd, single-threaded process between the parent and PID 1.

Why it exists (python-design.md): ``unshare(CLONE_NEWUSER)`` fails in any
multi-threaded process, so a trio parent can never do it, and
``PR_SET_PDEATHSIG`` set from a trio worker thread fires when that thread
exits.  The parent therefore only spawns this process with an ordinary
thread-safe spawn; the shim

1. reads and validates the whole setup record (nothing is touched on error),
2. unshares the namespaces and writes its own single-line uid/gid maps,
3. forks init, which is PID 1 of the new pid namespace,
4. watches the parent through a pidfd (parent gone → SIGKILL init), relays
   signals to init, and exits with init's status.
"""

from __future__ import annotations

import _signal
import fcntl
import os

from ..errors import EXIT_SETUP, HakureiError, SetupError, describe, safe_line
from ..wire import Setup, read_setup
from . import init as _init
from .kernel import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    SI_KERNEL,
    Kernel,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, Protocol

    class Report(Protocol):
        """Told when init is started and when it ended (the CLI's --info-fd, say)."""

        fds: list[int]  # kept open in the shim, closed in init

        def started(self, pid: int) -> None: ...
        def exited(self, status: int) -> None: ...
        def exit_status(self, status: int, ran: bool) -> int:
            """The shim's own exit status, from init's and whether the program ran."""
            ...

    from ..terminal import Terminal

#: Signals the shim passes on to init: the ones init handles (but SIGCHLD).
RELAYED = _init.RELAYED
#: The parent's cancel signal (hakurei.process.CANCEL_SIGNAL), blocked from the spawn on.
CANCEL_SIGNAL = _signal.SIGUSR2


#: The report channel to the parent (init's ``tell``): our dup of the setup
#: socket, or -1 when the setup fd is not a socket (a pipe, the CLI).
_report = -1


def fail(msg: str, status: int = EXIT_SETUP) -> NoReturn:
    """One line on stderr (and to the parent, if it listens), then exit; never a traceback."""
    try:
        os.write(2, f"{_init.ERROR_PREFIX}{safe_line(msg)}\n".encode(errors="replace"))
        _init.tell(_report, f"failed {status} {safe_line(msg)}")
    finally:
        Kernel().exit(status)


def report_channel(environ: dict[str, str] | os._Environ[str]) -> int:
    """A close-on-exec dup of the setup fd if it is a socket, else -1.

    The parent spawns us with one end of a socketpair as the setup fd: it
    writes the record and shuts down its writing side (our end of stream),
    then reads what we and init report on the same socket.  A pipe (a shim
    driven by hand, docs/protocol.md) has no way back: nothing is reported.
    """
    try:
        fd = int(environ.get("HAKUREI_SETUP", ""))
        if fd < 0 or os.fstat(fd).st_mode & 0o170000 != 0o140000:  # S_IFSOCK
            return -1
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    except (ValueError, OSError):
        return -1  # receive() says what is wrong with it


def receive(environ: dict[str, str] | os._Environ[str]) -> Setup:
    """Find the setup fd from ``HAKUREI_SETUP`` and read one record from it."""
    text = environ.get("HAKUREI_SETUP")
    if text is None:
        raise SetupError("HAKUREI_SETUP not set")
    try:
        fd = int(text)
    except ValueError:
        raise SetupError(
            f"cannot decode init setup payload: invalid setup descriptor {text!r}"
        ) from None
    if fd < 0:
        raise SetupError("invalid setup descriptor")
    try:
        setup = read_setup(fd)
    except SetupError as e:
        msg = str(e)
        if msg == "invalid setup descriptor":
            raise
        raise SetupError(f"cannot decode init setup payload: {msg}") from None
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    return setup


def keep_only(fds: list[int], k: Kernel | None = None) -> None:
    """Close every fd but stdio and ``fds``: nothing the parent leaked reaches init."""
    k = Kernel() if k is None else k
    low = 3
    for fd in sorted(fds):
        if fd > low:
            k.closerange(low, fd)
        low = max(low, fd + 1)
    k.closerange(low, 1 << 20)


def namespaces(host_net: bool) -> int:
    """The namespaces every container gets (the shim's unshare, the fork server's clone):
    all of them, but the network one with ``host_net``."""
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    flags |= CLONE_NEWCGROUP
    if not host_net:
        flags |= CLONE_NEWNET
    return flags


def write_maps(k: Kernel, s: Setup) -> None:
    """Map the container ids onto the caller's, as an unprivileged process may."""
    write_id_maps(k, s.uid, s.gid, s.host_uid, s.host_gid)


def write_id_maps(
    k: Kernel, uid: int, gid: int, host_uid: int, host_gid: int, proc: str = "/proc/self"
) -> None:
    """The single-line id maps of the user namespace of ``proc`` (ours, after unshare; or a
    child's, written by the fork server that cloned it): setgroups denied before gid_map."""
    k.write_file(f"{proc}/uid_map", f"{uid} {host_uid} 1\n".encode())
    try:
        k.write_file(f"{proc}/setgroups", b"deny\n")
    except FileNotFoundError:
        pass
    k.write_file(f"{proc}/gid_map", f"{gid} {host_gid} 1\n".encode())


def status_of(wait_status: int) -> int:
    """Exit status the shell convention gives a wait status: code, or 128+signal."""
    if os.WIFEXITED(wait_status):
        return os.WEXITSTATUS(wait_status)
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return 255


def main() -> NoReturn:
    """The shim entry: read the record from ``HAKUREI_SETUP``'s fd and run the container."""
    k = Kernel()
    # Until the relay takes the signals over, a terminal's Ctrl-C (we are in its process
    # group) must end us as the signal, as it would any program: not as Python's
    # KeyboardInterrupt, a traceback on the app's stderr while we wait for our setup.
    # The spawner blocked SIGINT across our exec, so one that came while the interpreter
    # started is pending: it ends us right here, silently.
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {_signal.SIGINT})
    setup, extra = take_setup()
    try:
        run(k, setup, extra)
    except HakureiError as e:
        fail(str(e), e.status)
    except Exception as e:
        fail(describe(e))


def take_setup() -> tuple[Setup, list[int]]:
    """The record on ``HAKUREI_SETUP``'s fd, and the extra files' fds after it.

    Shared by a cold shim and an init the fork server cloned: the report
    channel (a dup of the setup socket) is kept above the extra files, and a
    bad record is one line and exit 125 (``fail``), nothing touched.
    """
    global _report
    _report = report_channel(os.environ)
    try:
        setup = receive(os.environ)
    except HakureiError as e:
        end_if_cancelled()
        fail(str(e))
    except Exception as e:  # anything else is still a setup failure, in one line
        end_if_cancelled()
        fail(f"cannot decode init setup payload: {describe(e)}")
    setup_fd = int(os.environ["HAKUREI_SETUP"])
    if setup.files and setup_fd < 2:
        fail("invalid setup descriptor: extra files would overlap stdio")
    extra = [setup_fd + 1 + i for i in range(setup.files)]
    if _report >= 0:  # above the extra files
        above = fcntl.fcntl(_report, fcntl.F_DUPFD_CLOEXEC, setup_fd + 1 + setup.files)
        os.close(_report)
        _report = above
    return setup, extra


def end_if_cancelled() -> None:
    """A parent that gave up before sending the setup (``Container``'s cancel: the
    signal, then the end of the stream) gets no error line, only the status a death
    by the cancel signal gives (kept blocked since the spawn, it is pending).  Exit,
    not the signal's default action: an init the fork server cloned is PID 1, which
    a default action never ends."""
    if CANCEL_SIGNAL in _signal.sigpending():
        os._exit(128 + CANCEL_SIGNAL)


def reporting() -> int:
    """The report channel ``take_setup`` set up (-1 if none), for init to tell on."""
    return _report


def become(
    setup: Setup,
    extra: list[int] | None = None,
    report: Report | None = None,
    term: Terminal | None = None,
    hold: list[int] | None = None,
) -> NoReturn:
    """Be the shim in this very process: unshare, fork init, relay, exit with its status.

    For a caller that is single-threaded and never imported trio (the CLI),
    re-executing the interpreter would only repeat its start-up and imports
    (~20 ms); the reasons for a separate shim (threads, per-thread pdeathsig)
    do not apply.  Every fd but stdio, ``extra`` (the program's 3, 4, ...)
    and ``report``'s is closed; nothing is returned.  With ``term`` the
    program gets a terminal of its own (hakurei/terminal.py).  ``hold``:
    close-on-exec fds init inherits for its ops (a bind of ``/proc/self/fd/N``),
    never the program's.
    """
    try:
        run(Kernel(), setup, extra or [], report, term, hold or [])
    except HakureiError as e:
        fail(str(e), e.status)
    except Exception as e:
        fail(describe(e))


def run(
    k: Kernel,
    setup: Setup,
    extra: list[int],
    report: Report | None = None,
    term: Terminal | None = None,
    hold: tuple[int, ...] | list[int] = (),
) -> NoReturn:

    _init.ERROR_PREFIX = setup.message_prefix
    # Watch the parent before anything else: if it is gone already (we were
    # reparented), there is nobody to serve.  parent_pid 0 means the caller
    # is the shim itself (the CLI) and nobody is watched, as with bwrap.
    parent = None
    if setup.parent_pid:
        try:
            parent = k.pidfd_open(setup.parent_pid)
        except OSError as e:
            raise SetupError(f"cannot watch parent {setup.parent_pid}: {describe(e)}") from None
        if os.getppid() != setup.parent_pid:
            raise SetupError(f"parent {setup.parent_pid} is not this process's parent (it exited?)")
    if setup.verbose:  # which way this container started (-v, and the library's verbose)
        _init.say(f"shim: {'a cold spawn' if setup.parent_pid else 'the calling process itself'}")
    keep = extra if parent is None else [*extra, parent]
    # The caller's fds the container holds (bwrap's --sync-fd, --block-fd,
    # --userns-block-fd); Setup allows them only when the caller is the shim.
    held = (
        setup.sync_fd,
        setup.block_fd,
        setup.userns_block_fd,
        setup.userns_fd,
        setup.userns2_fd,
        setup.pidns_fd,
    )
    keep = [*keep, *(fd for fd in held if fd >= 0)]
    if _report >= 0:
        keep = [*keep, _report]
    if term is not None:
        keep = [*keep, *term.fds]
    keep = [*keep, *hold]
    keep_only(keep if report is None else [*keep, *report.fds], k)
    k.set_name("hakurei-shim")

    flags = namespaces(setup.host_net)
    if setup.userns_fd >= 0:
        join_userns(k, setup.userns_fd)
        flags &= ~CLONE_NEWUSER
    if setup.pidns_fd >= 0:
        flags &= ~CLONE_NEWPID
    try:
        k.unshare(flags)
    except OSError as e:
        raise SetupError(f"cannot unshare namespaces: {describe(e)}") from None
    if setup.pidns_fd >= 0:
        # bwrap's --pidns: init starts in that pid namespace, not as its PID 1.
        try:
            k.setns(setup.pidns_fd, CLONE_NEWPID)
        except OSError as e:
            raise SetupError(f"cannot join the pid namespace of pidns fd: {describe(e)}") from None
        k.close(setup.pidns_fd)
    if setup.userns_block_fd < 0 and setup.userns_fd < 0:  # else mapped already, or from outside
        try:
            write_maps(k, setup)
        except OSError as e:
            raise SetupError(f"cannot write id maps: {describe(e)}") from None

    # A caller that ignores SIGCHLD passes that on through exec; with it the
    # kernel reaps children unasked and sends no SIGCHLD, so init would never
    # see the program exit and our waitpid would fail.  Both need the default.
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    # Signals stay blocked across the fork: init keeps them blocked and takes
    # them with sigwaitinfo, the shim reads them from a signalfd (``relay``).
    _signal.pthread_sigmask(_signal.SIG_BLOCK, RELAYED)
    alive_r, alive_w = os.pipe()
    # Did the program start?  Init writes "s" once it runs (and "f" after it,
    # as PID 1, when its exec failed): only then is its exit the program's.
    started_r, started_w = os.pipe2(os.O_CLOEXEC) if report is not None else (-1, -1)
    go_r, go_w = os.pipe2(os.O_CLOEXEC) if setup.userns_block_fd >= 0 else (-1, -1)
    pid = k.fork()
    if pid == 0:
        os.close(alive_w)
        for fd in (*(report.fds if report is not None else ()), started_r, go_w):
            if fd >= 0:
                os.close(fd)  # a reader waiting for end of file must not wait for init
        tty = None if term is None else term.child()
        _init.main(k, setup, extra, alive_r, _report, tty, started_w, go_r)
    os.close(alive_r)
    for fd in (*extra, *hold, started_w, go_r, setup.sync_fd, setup.block_fd, setup.userns2_fd):
        if fd >= 0:
            os.close(fd)  # init holds them now: the caller sees EOF when init is gone
    if report is not None:
        report.started(pid)
    if go_w >= 0:
        let_go(k, setup.userns_block_fd, go_w)
    if started_r >= 0:
        os.set_blocking(started_r, False)
    if term is not None:
        term.relay(pid, report, k)
    relay(pid, parent, report, k=k, started=started_r, shared_terminal=setup.retain_session)


def join_userns(k: Kernel, fd: int) -> None:
    """bwrap's --userns: the container's namespaces belong to an existing user namespace.

    An unprivileged caller may join one it owns (one its uid created, or a
    descendant of one); its id maps are already written, so none are here.
    """
    try:
        k.setns(fd, CLONE_NEWUSER)
    except OSError as e:
        if e.errno == 22:  # EINVAL: not a user namespace, or not one below ours
            raise SetupError(
                "cannot join the user namespace of userns fd: it is not one, or not a"
                " descendant of the current user namespace"
            ) from None
        raise SetupError(f"cannot join the user namespace of userns fd: {describe(e)}") from None
    k.close(fd)


def let_go(k: Kernel, block: int, go: int) -> None:
    """bwrap's --userns-block-fd: init waits, unmapped, until the caller's fd is readable.

    The caller learnt init's pid from the info fd (``report.started``) and
    writes the id maps of its user namespace from outside meanwhile.
    """
    try:
        k.read(block, 1)
    except OSError as e:
        raise SetupError(f"cannot read userns block fd: {describe(e)}") from None
    k.close(block)
    k.write(go, b"g")
    k.close(go)


def relay(
    pid: int,
    parent: int | None,
    report: Report | None = None,
    k: Kernel | None = None,
    started: int = -1,
    shared_terminal: bool = False,
) -> NoReturn:
    """Pass signals to init until it exits; kill it if the parent dies first.

    The signals stay blocked (since before the fork) and are read from a
    signalfd, which says who sent each: ``shared_terminal`` (the program is
    in our foreground group, ``retain_session``) skips what the terminal
    sent, which reached the program as it reached us.
    """
    k = Kernel() if k is None else k
    child = k.pidfd_open(pid)
    watch(k, pid, parent, child, relayed_signals(k), report, started, shared_terminal)


def relayed_signals(k: Kernel) -> int:
    """A signalfd of ``RELAYED``, which stay blocked: the shim's relay, the fork server's.

    Each back to its default action first: an ignored one would never queue,
    and blocked, the default never acts.  Read with ``k.read_signals``.
    """
    k.default_signals(RELAYED)
    _signal.pthread_sigmask(_signal.SIG_BLOCK, RELAYED)
    return k.signalfd(RELAYED)


def watch(
    k: Kernel,
    pid: int,
    parent: int | None,
    child: int,
    sigfd: int,
    report: Report | None,
    started: int = -1,
    shared_terminal: bool = False,
) -> NoReturn:
    """The relay's loop, over the kernel seam (tests/unit/test_shim_relay.py replays it).

    ``parent`` and ``child`` are pidfds (the parent's, None if nobody is
    watched, and init's); ``sigfd`` is the signalfd of ``RELAYED``.
    ``started`` (non-blocking, -1 if none) is init's "the program started"
    pipe: ``report.exited`` is told only if it said so, as bwrap's
    json-status fd has an exit code only for a program that ran.  With
    ``shared_terminal`` a signal the terminal sent (``SI_KERNEL``: Ctrl-C,
    Ctrl-\\, Ctrl-Z, its hangup) is not passed on: the program is in the
    terminal's foreground group and got it itself, so one Ctrl-C stays one.
    """
    said = b""
    fds = tuple(fd for fd in (parent, child, sigfd) if fd is not None)
    if started >= 0:
        fds = (*fds, started)
    while True:
        for fd in k.poll(fds):
            if fd == started:
                chunk = _drain(k, started)
                if chunk == b"":  # init closed it (or exec'd as PID 1): all said
                    fds = tuple(f for f in fds if f != started)
                said += chunk or b""
            elif fd == sigfd:
                for sig, code in k.read_signals(sigfd):
                    if not (shared_terminal and code == SI_KERNEL):
                        try:
                            k.kill(pid, sig)
                        except ProcessLookupError:
                            pass
                    if sig == _signal.SIGTSTP:  # init stops the container; then we stop
                        k.kill(k.getpid(), _signal.SIGSTOP)
            elif fd == parent:
                k.kill(pid, _signal.SIGKILL)
                _, status = k.waitpid(pid, 0)
                k.exit(status_of(status))
            elif fd == child:
                _, status = k.waitpid(pid, 0)
                while started in fds:  # all of it was written before init exited
                    chunk = _drain(k, started)
                    if not chunk:
                        break
                    said += chunk
                code = status_of(status)
                if report is not None:
                    ran = started < 0 or said == b"s"
                    if ran:
                        report.exited(code)
                    code = report.exit_status(code, ran)
                k.exit(code)


def _drain(k: Kernel, fd: int) -> bytes | None:
    """What init wrote on the started pipe so far (non-blocking: None if nothing yet)."""
    try:
        return k.read(fd, 16)
    except BlockingIOError:
        return None
