"""The CLI's side of the program's terminal: raw mode, relay, window size, restore.

When ``hakurei exec`` runs in a terminal it does what ``sudo`` (use_pty),
``docker run -t`` and ``systemd-run --pty`` do (docs/design.md "The
terminal"): the program gets a pseudo-terminal of its own, allocated by init
inside the container (init/pty.py) and the controlling terminal of the
program's new session there; init passes the master back over a socket.  The
CLI (which is the shim, single-threaded) switches the user's terminal to raw
mode, so Ctrl-C, Ctrl-Z and every other key are plain bytes for the pty's line
discipline, relays bytes both ways, copies the window size on SIGWINCH, and
puts the user's terminal settings back on every way out.  The program only
ever holds the slave: nothing inside can inject into (``TIOCSTI``) or
reconfigure the user's real terminal, with or without seccomp.  Stdin being
a terminal is what asks for the pty; the slave replaces only those of fds
0-2 that are terminals here, so ``> log`` or ``| less`` stays byte-exact.

Only the CLI imports this module (never init, never the library's shim).
"""

from __future__ import annotations

import _signal
import _socket
import fcntl
import os
import select
import sys
import termios

from .init.shim import RELAYED, status_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from .init.kernel import Kernel
    from .init.shim import Report

#: One read from either side; a pty hands out at most a few KiB at a time anyway.
CHUNK = 1 << 16


def wanted(flags: set[str], retain_session: bool) -> bool:
    """``--pty`` forces a terminal, ``--no-pty`` refuses it; by default, when stdin is one.

    As ``sudo``'s use_pty: stdin alone decides, so ``hakurei exec -- cmd >
    file`` typed at a terminal still gives the program a terminal (job control,
    ``tty``, a password prompt on stderr).  The program gets the pty's slave
    only on those of fds 0-2 that are terminals here (``mask``); a stdout or
    stderr that is a file or pipe is passed through untouched, byte-exact (a
    pty would turn ``\\n`` into ``\\r\\n`` and merge it with the terminal's
    output).  ``--retain-session`` shares the caller's terminal instead, so no pty.
    """
    if "--pty" in flags:
        return True
    if "--no-pty" in flags or retain_session:
        return False
    return os.isatty(0)


def mask() -> int:
    """Which of fds 0-2 are terminals, bit ``1 << fd``: the ones the program gets the slave on."""
    return sum(1 << fd for fd in (0, 1, 2) if os.isatty(fd))


def screen(ttys: int) -> int:
    """Where the pty's output goes: the first of fds 1, 2, 0 that is a terminal, else fd 1.

    Not blindly fd 1: with ``> log`` that is the program's own file, and
    what comes out of the pty (stderr, echo) belongs on the user's terminal.
    """
    for fd in (1, 2, 0):
        if ttys & (1 << fd):
            return fd
    return 1


def window(fd: int) -> tuple[int, int]:
    """(rows, columns) of the terminal ``fd``; (0, 0) when it has none."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 0, 0
    return size.lines, size.columns


def raw_mode(mode: list[Any]) -> list[Any]:
    """``cfmakeraw``: no echo, no line editing, no signals from keys, 8-bit, no output mapping."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = mode
    assert isinstance(iflag, int) and isinstance(oflag, int)
    assert isinstance(cflag, int) and isinstance(lflag, int) and isinstance(cc, list)
    iflag &= ~(
        termios.IGNBRK
        | termios.BRKINT
        | termios.PARMRK
        | termios.ISTRIP
        | termios.INLCR
        | termios.IGNCR
        | termios.ICRNL
        | termios.IXON
    )
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc = list(cc)
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    return [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]


class Terminal:
    """One run's terminal: the socket init sends the master on, then the relay."""

    def __init__(self) -> None:
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock = ours.detach()  # close-on-exec, as Python makes every fd
        self.init_sock = theirs.detach()
        self.tty = os.isatty(0)
        self.mask = mask()
        self.out = screen(self.mask)  # the user's terminal, for what comes out of the pty
        self.rows, self.cols = window(0) if self.tty else (0, 0)
        #: the user's terminal settings while we hold it raw, else None
        self.saved: list[Any] | None = None
        self.master = -1
        self.pending = b""  # keyboard bytes the pty has not taken yet
        self.out_ok = True  # False once that terminal is gone: output is then dropped
        self.stdin_done = False  # stdin ended: never polled again

    @property
    def fds(self) -> list[int]:
        """The fds the shim must keep open across its fd sweep."""
        return [self.sock, self.init_sock]

    def child(self) -> tuple[int, int, int, int]:
        """In init (after the fork): what init needs to allocate the pty and place its slave."""
        os.close(self.sock)
        return self.init_sock, self.rows, self.cols, self.mask

    # -- the user's terminal ----------------------------------------------------
    def raw(self) -> None:
        if not self.tty or self.saved is not None:
            return
        try:
            saved = termios.tcgetattr(0)
            termios.tcsetattr(0, termios.TCSADRAIN, raw_mode(saved))
        except termios.error:
            return
        self.saved = saved

    def restore(self) -> None:
        """Put the user's settings back (idempotent; a vanished terminal is no error)."""
        if self.saved is None:
            return
        saved, self.saved = self.saved, None
        try:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        except termios.error:
            pass

    def resize(self) -> None:
        """Copy the user's window size to the pty (the kernel sends SIGWINCH inside)."""
        if not self.tty or self.master < 0:
            return
        rows, cols = window(0)
        if rows and cols:
            raw = rows.to_bytes(2, sys.byteorder) + cols.to_bytes(2, sys.byteorder) + bytes(4)
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, raw)
            except OSError:
                pass

    # -- the relay ------------------------------------------------------------------
    def receive(self) -> int:
        """The master init sent, or -1 (init failed first and closed its end)."""
        s = _socket.socket(fileno=self.sock)
        try:
            _, anc, _, _ = s.recvmsg(1, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC)
        except OSError:
            anc = []
        finally:
            s.detach()
        fds = [
            int.from_bytes(data[i : i + 4], sys.byteorder)
            for level, kind, data in anc
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
            for i in range(0, len(data) - 3, 4)
        ]
        for extra in fds[1:]:
            os.close(extra)
        return fds[0] if fds else -1

    def output(self, data: bytes) -> None:
        """All of ``data`` to the user's terminal, in order (blocking: the program waits for it)."""
        view = memoryview(data)
        while view and self.out_ok:
            try:
                view = view[os.write(self.out, view) :]
            except BlockingIOError:  # someone set O_NONBLOCK on the shared terminal
                select.select([], [self.out], [], 1.0)
            except OSError:
                self.out_ok = False

    def drain(self) -> None:
        """Everything the program wrote before it ended (the kernel flushes before EIO)."""
        if self.master < 0:
            return
        os.set_blocking(self.master, False)
        while True:
            try:
                data = os.read(self.master, CHUNK)
            except OSError:  # EIO: no slave left; EAGAIN: nothing more
                return
            if not data:
                return
            self.output(data)

    def relay(self, pid: int, report: Report | None, k: Kernel) -> NoReturn:
        """The shim's loop in a terminal: bytes both ways, signals, then init's status.

        Process calls go through the shim's syscall seam ``k`` (init/kernel.py).
        """
        os.close(self.init_sock)
        child = os.pidfd_open(pid)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        caught = (*RELAYED, _signal.SIGWINCH)
        for sig in caught:
            _signal.signal(sig, _noop)
        _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, caught)
        try:
            status = self.loop(k, pid, child, wake_r)
        finally:
            self.restore()
        if report is not None:
            report.exited(status)
        k.exit(status)

    def loop(self, k: Kernel, pid: int, child: int, wake_r: int) -> int:
        poller = select.poll()
        for fd in (child, wake_r, self.sock):
            poller.register(fd, select.POLLIN)
        while True:
            for fd, events in poller.poll():
                if fd == child:
                    self.drain()
                    _, status = k.waitpid(pid, 0)
                    return status_of(status)
                if fd == wake_r:
                    self.signals(k, pid, os.read(wake_r, 64))
                elif fd == self.sock:
                    poller.unregister(fd)
                    self.master = self.receive()
                    os.close(fd)
                    if self.master >= 0:
                        os.set_blocking(self.master, False)
                        self.raw()
                        self.resize()  # the window may have changed since the fork
                        poller.register(self.master, select.POLLIN)
                        poller.register(0, select.POLLIN)
                elif fd == self.master:
                    if events & select.POLLOUT and not self.flush():
                        poller.modify(fd, select.POLLIN)
                        if not self.stdin_done:
                            poller.register(0, select.POLLIN)
                    if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        try:
                            data = os.read(fd, CHUNK)
                        except BlockingIOError:
                            continue
                        except OSError:  # EIO: every slave closed; init's exit follows
                            data = b""
                        if data:
                            self.output(data)
                        else:
                            poller.unregister(fd)
                elif fd == 0:
                    try:
                        data = os.read(0, CHUNK)
                    except OSError:
                        data = b""
                    poller.unregister(0)
                    if not data:  # EOF (or a terminal gone): stop reading, keep relaying output
                        self.stdin_done = True
                        data = b"" if self.tty else self.eof()
                    if data:
                        self.pending = data
                        if self.flush():
                            poller.modify(self.master, select.POLLIN | select.POLLOUT)
                        elif not self.stdin_done:
                            poller.register(0, select.POLLIN)

    def eof(self) -> bytes:
        """The pty's end-of-file key: piped stdin (``--pty``) that ends ends the program's input.

        Typed at the start of a line, VEOF makes the program's read return 0,
        as EOF on a pipe would; sent twice, it also ends a last line without
        a newline.  (A program that set its pty raw gets plain bytes.)
        """
        try:
            key = termios.tcgetattr(self.master)[6][termios.VEOF]
        except termios.error:
            key = b"\x04"
        return bytes(key) * 2 if isinstance(key, bytes) else bytes([key, key])

    def flush(self) -> bool:
        """Write pending keyboard bytes to the pty; True while some are left."""
        try:
            n = os.write(self.master, self.pending)
        except BlockingIOError:
            n = 0
        except OSError:  # the pty is gone: the keys have nowhere to go
            n = len(self.pending)
        self.pending = self.pending[n:]
        return bool(self.pending)

    def signals(self, k: Kernel, pid: int, sigs: bytes) -> None:
        for sig in sigs:
            if sig == _signal.SIGWINCH:
                self.resize()
                continue
            if sig == _signal.SIGTSTP:  # kill -TSTP: the terminal back, then stop with the rest
                self.restore()
            try:
                k.kill(pid, sig)
            except ProcessLookupError:
                pass
            if sig == _signal.SIGTSTP:
                k.kill(os.getpid(), _signal.SIGSTOP)
            elif sig == _signal.SIGCONT and self.master >= 0:
                self.raw()
                self.resize()


def _noop(signum: int, frame: object) -> None:
    """A handler only so the signal reaches the wakeup fd instead of its default action."""
