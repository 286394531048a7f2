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

import math
import os
from typing import TYPE_CHECKING, Any

import trio

from .errors import StartError
from .launch import (
    CANCEL_SIGNAL,
    Completed,
    ContainerExitError,
    Params,
    Shim,
    check_run_args,
    decoded,
    sent,
)
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
        self._serving = False

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
        """Send the setup record and wait until the program runs.

        Raises ``StartError`` with the line init printed if the container's
        setup fails (the container has then exited with status 125).  A
        program that cannot be executed is not an error here: ``wait()``
        returns its 126 or 127, as a shell would.
        """
        shim, setup = self._shim, self._setup
        if shim is None or setup is None or shim.setup_w is None:
            raise StartError("invalid serve")
        self._serving = True
        stream = trio.lowlevel.FdStream(shim.setup_w)
        shim.setup_w = None
        try:
            try:
                await stream.send_all(shim.record(setup))
            except trio.BrokenResourceError:
                pass  # the shim exited early; its report and status say why
            finally:
                sent(shim)  # before aclose(), which is a checkpoint and may raise Cancelled
                shim.end_setup()
                await stream.aclose()
            await self._until_started(shim)
        except BaseException:
            await self._cancel()
            raise
        if shim.setup_error() is not None:
            await self.wait()
            error = shim.setup_error()
            assert error is not None
            raise error

    @staticmethod
    async def _until_started(shim: Shim) -> None:
        """Read the shim's reports until init says the program runs, or why it does not."""
        while not shim.started and shim.failure is None and shim.report is not None:
            await trio.lowlevel.wait_readable(shim.report)
            data = os.read(shim.report, 4096)
            if not data:
                return  # the shim is gone; wait() gives its status
            shim.hear(data)

    async def wait(self) -> int:
        """Wait for the container; its exit status (see ``run_sync``)."""
        shim = self._shim
        if shim is None:
            raise StartError("container: wait before start")
        if shim.status is not None:
            return shim.status
        if shim.setup_w is not None and not self._serving:
            await trio.lowlevel.checkpoint()  # a serve() just started with start_soon runs now
            if shim.setup_w is not None and not self._serving:
                raise StartError(
                    "container: wait() before serve(): init would wait for its setup forever"
                )
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
                shim.end_setup()
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
    input: bytes | str | None = None,
    timeout: float | None = None,
    text: bool = False,
    **kwargs: Any,
) -> Completed:
    """Start, serve and wait for a container; ``Completed`` like ``subprocess.run``.

    ``input`` is written to the program's stdin and, with ``capture_output``,
    stdout and stderr are read, concurrently through pipes; ``text`` makes
    them str (UTF-8).  A setup failure raises ``StartError``.  After
    ``timeout`` seconds the container is cancelled as described in the module
    docstring and ``subprocess.TimeoutExpired`` is raised.  Cancelling the
    surrounding scope cancels the container the same way.  An exception from
    inside (Ctrl-C's ``KeyboardInterrupt`` included) propagates as itself,
    not wrapped in an exception group.
    """
    data = check_run_args("run()", stdin, stdout, stderr, input, capture_output, timeout, text)
    pipes: list[tuple[int, int]] = []
    feed: int | None = None
    if data is not None:
        stdin, feed = os.pipe()
    if capture_output:
        pipes = [os.pipe(), os.pipe()]
        stdout, stderr = pipes[0][1], pipes[1][1]
    captured: list[list[bytes]] = [[], []]
    try:
        try:
            c = Container(path, args, stdin=stdin, stdout=stdout, stderr=stderr, **kwargs)
            await c.start()
        finally:
            for _, w in pipes:
                os.close(w)
            if feed is not None:
                assert isinstance(stdin, int)
                os.close(stdin)
        with trio.move_on_after(math.inf if timeout is None else timeout) as deadline:
            async with trio.open_nursery() as nursery:
                for i, (r, _) in enumerate(pipes):
                    nursery.start_soon(_collect, r, captured[i])
                pipes = []
                if feed is not None:
                    assert data is not None
                    nursery.start_soon(_feed, feed, data)
                    feed = None
                await c.serve()
                await c.wait()
    except BaseExceptionGroup as group:
        raise _unwrapped(group) from None
    finally:
        for r, _ in pipes:
            os.close(r)
        if feed is not None:
            os.close(feed)
    output = [b"".join(chunks) if capture_output else None for chunks in captured]
    if deadline.cancelled_caught:
        import subprocess

        assert timeout is not None
        raise subprocess.TimeoutExpired(c.params.args, timeout, output=output[0], stderr=output[1])
    status = c.returncode
    assert status is not None
    result = Completed(c.params.args, status, decoded(output[0], text), decoded(output[1], text))
    if check and status:
        raise ContainerExitError(result)
    return result


def _unwrapped(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside ``group`` (nested groups too), or the group itself.

    ``run``'s nursery is an implementation detail: a caller of a
    ``subprocess.run``-like function expects ``KeyboardInterrupt`` or
    ``StartError`` itself, as ``run_sync`` raises them.
    """
    leaves: list[BaseException] = []
    todo: list[BaseException] = [group]
    while todo and len(leaves) < 2:
        e = todo.pop()
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        else:
            leaves.append(e)
    return leaves[0] if len(leaves) == 1 and not todo else group


async def _collect(fd: int, chunks: list[bytes]) -> None:
    async with trio.lowlevel.FdStream(fd) as stream:
        while chunk := await stream.receive_some():
            chunks.append(chunk)


async def _feed(fd: int, data: bytes) -> None:
    """Write ``input`` to the program's stdin, then close it (EOF), as subprocess does."""
    async with trio.lowlevel.FdStream(fd) as stream:
        try:
            await stream.send_all(data)
        except trio.BrokenResourceError:
            pass  # the program exited or closed stdin without reading it all


__all__ = ["Container", "run"]
