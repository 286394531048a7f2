"""A started container as its caller holds it: pid, pidfd, the setup socket, its exit.

A spawner makes these (``spawn.py``: a cold ``posix_spawn`` of the shim, or a
fork of the per-process server in ``forkserver.py``); the handle knows
nothing of how it was made beyond where its exit status comes from:

* cold: the shim is our child, ``exit_fd`` is its pidfd and ``waitpid``
  gives the status;
* fork server: there is no shim; ``pid`` is init, the server's child
  (``waitid`` does not work on a non-child), ``exit_fd`` is a socket the
  server writes the status to when it reaps init, and end of stream without a
  status means the server died.

Either way fd 3 of the shim (or init) is the other end of ``sock``: the caller writes the
setup record and shuts down its writing side, then reads the shim's and
init's reports (``init.init.tell``): ``started``, ``exited N`` (the program's
status, told before init waits for orphans) and ``failed N MESSAGE``.  init's
stderr may be /dev/null or the caller's terminal; the report is how the
library learns the message for a ``StartError``, and the program's status even
when the kill timer ends the container during the orphan wait.

Signals go through the pidfd (``pidfd_send_signal``), never a pid: a pid the
server reaped could be reused.
"""

from __future__ import annotations

import os

from .errors import EXIT_SETUP, ServerLostError, StartError
from .wire import Setup, encode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .results import Completed

#: What the parent sends to cancel a container (Go ``CancelSignal``).
CANCEL_SIGNAL = 12  # SIGUSR2
SIGKILL = 9
LOST = "the fork server that started this container died; the container died with it"


class Process:
    """One container's shim, spawned and (until ``send``) blocked on its setup socket."""

    #: how it was started, for ``-v`` and tests: "cold" or "fork server"
    via = "cold"

    def __init__(
        self, pid: int, pidfd: int, sock: int, exit_fd: int, *, preloaded: bool = False
    ) -> None:
        self.pid = pid
        self.pidfd = pidfd
        #: our end of the setup socket until the record is sent
        self.setup_w: int | None = sock
        #: the same socket, kept after the record is sent to hear the reports
        self.report: int | None = os.dup(sock)
        #: readable once the shim has exited (see the module docstring)
        self.exit_fd = exit_fd
        self._heard = b""
        #: init reported that the program runs
        self.started = False
        #: the program's status as init reported it, or None
        self.program_status: int | None = None
        #: (status, message) of a fatal error the shim or init reported
        self.failure: tuple[int, str] | None = None
        #: the container's exit status once reaped
        self.status: int | None = None
        #: the record went into the socket before the container existed (spawn's preload)
        self.preloaded = preloaded
        if preloaded:
            self.close_setup()

    def send(self, setup: Setup) -> None:
        """Blocking write of the setup record; a shim that died early is not an error here."""
        data = encode(setup)
        w = self.setup_w
        assert w is not None
        self.setup_w = None
        try:
            write_all(w, data)
        except BrokenPipeError:
            pass  # the shim exited; wait() reports why
        finally:
            self.end_setup()
            os.close(w)

    def close_setup(self) -> None:
        """Give up on sending the record: the shim sees end of stream and exits 125."""
        if self.setup_w is not None:
            os.close(self.setup_w)
            self.setup_w = None
        self.end_setup()

    def end_setup(self) -> None:
        """Shut down our writing side: the shim's end of stream (our dup keeps the socket open)."""
        if self.report is not None:
            import _socket

            sock = _socket.socket(fileno=self.report)
            try:
                sock.shutdown(_socket.SHUT_WR)
            except OSError:
                pass  # the shim is gone already
            finally:
                sock.detach()

    def hear(self, data: bytes) -> None:
        """Take in report lines (see the module docstring); a torn line waits for the rest."""
        self._heard += data
        *lines, self._heard = self._heard.split(b"\n")
        for line in lines:
            word, _, rest = line.decode(errors="replace").partition(" ")
            code, _, message = rest.partition(" ")
            try:
                if word == "started":
                    self.started = True
                elif word == "exited":
                    self.program_status = int(code)
                elif word == "failed":
                    self.failure = (int(code), message)
            except ValueError:
                pass  # not ours to act on; the exit status still tells

    def listen(self, timeout: float) -> bool:
        """Read what is reported within ``timeout`` seconds; False if nothing (or end of stream)."""
        fd = self.report
        if fd is None or not _readable(fd, timeout):
            return False
        try:
            data = os.read(fd, 4096)
        except ConnectionResetError:
            # It died with our setup record unread (a Ctrl-C to its process group while
            # it started): the kernel resets instead of ending the stream.  The end, as EOF is.
            data = b""
        self.hear(data)
        return bool(data)

    def setup_error(self, result: Completed | None = None) -> StartError | None:
        """The ``StartError`` for a setup failure init or the shim reported, else None.

        Only status 125: a program that cannot be executed (126, 127) is the
        program's status, as a shell reports it.
        """
        if self.failure is None or self.failure[0] != EXIT_SETUP:
            return None
        error = StartError(self.failure[1])
        error.result = result
        return error

    @property
    def done(self) -> bool:
        """Reaped (or lost with its fork server): nothing left to wait for or signal."""
        return self.status is not None or self.exit_fd < 0

    def signal(self, sig: int) -> None:
        """Signal the shim (it relays to init); nothing if it is gone."""
        if not self.done:
            import _signal  # not signal: its enum costs milliseconds on first import

            try:
                _signal.pidfd_send_signal(self.pidfd, sig)
            except ProcessLookupError:
                pass

    def exited(self, timeout: float = 0) -> bool:
        """Whether the shim has exited (``reap`` would not block), waiting up to ``timeout`` s."""
        return self.status is not None or _readable(self.exit_fd, max(timeout, 0))

    def reap(self) -> int:
        """Collect the container's status (blocking): exit code, or 128+signal.

        Raises ``ServerLostError`` if the fork server died before it could tell
        (the container died with it).
        """
        if self.status is not None:
            return self.status
        if self.exit_fd < 0:  # reaped before, but the fork server had died
            raise ServerLostError(LOST)
        try:
            status = self._collect()
        finally:
            self._release()
        # The shim is gone; init is gone or dying of its pdeathsig, so the end
        # of stream is at most that moment away (bounded anyway).
        while self.listen(1.0):
            pass
        if self.report is not None:
            os.close(self.report)
            self.report = None
        # init saw the program exit: that is the container's status, even if
        # our kill timer then ended the wait for its orphans.
        self.status = status if self.program_status is None else self.program_status
        return self.status

    def _collect(self) -> int:
        """The shim's exit status, blocking; a cold shim is our child."""
        _, st = os.waitpid(self.pid, 0)
        status = os.waitstatus_to_exitcode(st)
        return 128 - status if status < 0 else status

    def _release(self) -> None:
        """Close what only a live shim needed (the pidfd; the status socket if not the pidfd)."""
        if self.exit_fd != self.pidfd:
            os.close(self.exit_fd)
        os.close(self.pidfd)
        self.exit_fd = self.pidfd = -1

    def abandon(self) -> None:
        """Kill and reap after a failure, so nothing outlives the caller's error.

        SIGKILL before the setup stream ends: a shim still reading it must not
        live to report a truncated record.
        """
        self.signal(SIGKILL)
        self.close_setup()
        try:
            self.reap()
        except ServerLostError:
            pass  # gone with its server: nothing left to reap


class ServedProcess(Process):
    """A shim the fork server started: its status arrives as a message from the server."""

    via = "fork server"

    def _collect(self) -> int:
        _readable(self.exit_fd, None)
        data = os.read(self.exit_fd, 64)
        if not data:
            from . import forkserver

            forkserver.forget_dead()  # reap it now; the next start spawns a new one
            raise ServerLostError(LOST)
        return int(data)


def write_all(fd: int, data: bytes) -> None:
    """os.write until all of ``data`` is written (a socket may take it in pieces)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _readable(fd: int, timeout: float | None) -> bool:
    """poll(2) one fd (not select(): it may be above FD_SETSIZE); None waits forever."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else timeout * 1000))


__all__ = ["CANCEL_SIGNAL", "Process", "ServedProcess", "write_all"]
