"""The trio API: ``Container.start()``, ``serve()``, ``wait()`` and ``run()``.

Cancellation semantics (like trio's ``run_process``): when the scope around
``wait()`` (or ``run()``) is cancelled, the container gets the cancel signal
(SIGUSR2; init either exits, taking every process with it, or, with
``forward_cancel``, sends SIGINT to the program and keeps reaping).  If it is
still alive ``wait_delay`` seconds later it is SIGKILLed.  Either way the
container is gone and reaped before ``Cancelled`` propagates.

Nothing here blocks the event loop for long: the spawn is a vfork+exec, and
waiting uses a pidfd registered with trio.  A container started from a trio
worker thread does not die with the thread: nothing uses PR_SET_PDEATHSIG on
the parent side (the shim watches the parent *process* through a pidfd).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import trio

from .errors import StartError
from .launch import CANCEL_SIGNAL, Completed, ContainerExitError, Params, Shim, sent
from .params import Setup, check_wait

if TYPE_CHECKING:
    from .launch import Stdio

SIGKILL = 9


class Container:
    """One container.  Arguments are those of ``Params`` plus stdio and extra fds.

    ``stdin``/``stdout``/``stderr`` take an fd or a file object; None means
    /dev/null.  ``extra_files`` appear in the program as fds 3, 4, ... in order.
    """

    def __init__(
        self,
        path: str,
        args: list[str] | None = None,
        *,
        stdin: Stdio = None,
        stdout: Stdio = None,
        stderr: Stdio = None,
        extra_files: Any = (),
        wait_delay: float = 5.0,
        **params: Any,
    ) -> None:
        self.params = Params(path, args, **params)
        check_wait("wait_delay", wait_delay)  # trio's move_on_after would take inf or NaN
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.extra_files = list(extra_files)
        self.wait_delay = wait_delay
        self._shim: Shim | None = None
        self._setup: Setup | None = None

    def __str__(self) -> str:
        return str(self.params)

    @property
    def pid(self) -> int | None:
        """The shim's pid (the process the parent spawned), once started."""
        return self._shim.pid if self._shim else None

    @property
    def returncode(self) -> int | None:
        return self._shim.status if self._shim else None

    async def start(self) -> None:
        """Spawn the shim.  Raises StartError (or OpError for a bad op) on failure."""
        if self._shim is not None:
            raise StartError("container: already started")
        self._setup = self.params.resolve(len(self.extra_files))
        self._shim = Shim.launch(self.stdin, self.stdout, self.stderr, self.extra_files)

    async def serve(self) -> None:
        """Send the setup record; init cannot proceed before this."""
        shim, setup = self._shim, self._setup
        if shim is None or setup is None or shim.setup_w is None:
            raise StartError("invalid serve")
        stream = trio.lowlevel.FdStream(shim.setup_w)
        shim.setup_w = None
        try:
            await stream.send_all(shim.record(setup))
        except trio.BrokenResourceError:
            pass  # the shim exited early; wait() reports its status
        except BaseException:
            await self._cancel()
            raise
        finally:
            sent(shim)  # before aclose(), which is a checkpoint and may raise Cancelled
            await stream.aclose()

    async def wait(self) -> int:
        """Wait for the container; its exit status (see ``run_sync``)."""
        shim = self._shim
        if shim is None:
            raise StartError("container: wait before start")
        if shim.status is not None:
            return shim.status
        try:
            await trio.lowlevel.wait_readable(shim.pidfd)
        except BaseException:
            await self._cancel()
            raise
        return shim.reap()

    async def _cancel(self) -> None:
        """Cancel signal, then SIGKILL after ``wait_delay``; always reaps."""
        shim = self._shim
        if shim is None or shim.status is not None:
            return
        with trio.CancelScope(shield=True):
            if shim.setup_w is not None:
                os.close(shim.setup_w)
                shim.setup_w = None
                sent(shim)
            shim.signal(CANCEL_SIGNAL)
            with trio.move_on_after(self.wait_delay):
                await trio.lowlevel.wait_readable(shim.pidfd)
                shim.reap()
                return
            shim.signal(SIGKILL)
            await trio.lowlevel.wait_readable(shim.pidfd)
            shim.reap()


async def run(
    path: str,
    args: list[str] | None = None,
    *,
    capture_output: bool = False,
    check: bool = False,
    stdin: Stdio = None,
    stdout: Stdio = None,
    stderr: Stdio = None,
    **kwargs: Any,
) -> Completed:
    """Start, serve and wait for a container; ``Completed`` like ``subprocess.run``.

    With ``capture_output`` stdout and stderr are read concurrently through
    pipes.  Cancelling the surrounding scope cancels the container as
    described in the module docstring.
    """
    pipes: list[tuple[int, int]] = []
    if capture_output:
        pipes = [os.pipe(), os.pipe()]
        stdout, stderr = pipes[0][1], pipes[1][1]
    c = Container(path, args, stdin=stdin, stdout=stdout, stderr=stderr, **kwargs)
    captured: list[bytes | None] = [None, None]
    try:
        await c.start()
    finally:
        for _, w in pipes:
            os.close(w)
    try:
        async with trio.open_nursery() as nursery:
            for i, (r, _) in enumerate(pipes):
                nursery.start_soon(_collect, r, captured, i)
            pipes = []
            await c.serve()
            await c.wait()
    finally:
        for r, _ in pipes:
            os.close(r)
    status = c.returncode
    assert status is not None
    result = Completed(c.params.args, status, captured[0], captured[1])
    if check and status:
        raise ContainerExitError(result)
    return result


async def _collect(fd: int, out: list[bytes | None], i: int) -> None:
    chunks = []
    async with trio.lowlevel.FdStream(fd) as stream:
        while chunk := await stream.receive_some():
            chunks.append(chunk)
    out[i] = b"".join(chunks)


__all__ = ["Container", "run"]
