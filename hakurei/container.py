"""The trio API: ``Container.start()``, ``serve()``, ``wait()`` and ``run()``.

Cancellation semantics (like trio's ``run_process``): when the scope around
``wait()`` (or ``run()``) is cancelled, the container gets the cancel signal
(SIGUSR2; init either exits, taking every process with it, or, with
``forward_cancel``, sends SIGINT to the program and keeps reaping).  If it is
still alive ``wait_delay`` seconds later it is SIGKILLed.  Either way the
container is gone and reaped before ``Cancelled`` propagates.

Nothing here blocks the event loop for long: a start is one request to this
process's fork server (``forkserver.py``; a fork away) or a vfork+exec (the
one start that spawns the server waits for it in a thread), and waiting polls
the handle's exit fd through trio.  A container started from a trio
worker thread does not die with the thread: nothing uses PR_SET_PDEATHSIG on
the parent side (the shim watches the parent *process* through a pidfd).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any

import trio

from . import forkserver
from .errors import StartError
from .params import Params, check_params, env_entries
from .process import CANCEL_SIGNAL, SIGKILL, Process
from .results import Completed, ContainerExitError, check_run_args, decoded
from .spawn import spawn
from .wire import Setup, check_wait, encode

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self, Unpack

    from .params import ParamsKw
    from .results import Stdio

    class ContainerKw(ParamsKw, total=False):
        """What ``run`` passes on to ``Container`` besides stdio."""

        extra_files: Any
        wait_delay: float
        fork_server: bool | None
        process_group: bool


class Container:
    """One container.  Arguments are those of ``Params`` plus stdio and extra fds.

    ``stdin``/``stdout``/``stderr`` take an fd or a file object; None means
    /dev/null.  ``extra_files`` appear in the program as fds 3, 4, ... in order.
    ``fork_server`` chooses the spawner (``spawn.spawn``): None for the
    default (the fork server unless ``HAKUREI_FORKSERVER=0``), False for a
    cold spawn.  ``process_group`` starts it cold in a process group of its
    own, out of reach of a terminal's Ctrl-C to the caller's group (a helper
    that must outlive the caller's interrupt, like the launcher's D-Bus proxy).

    As an async context manager it is started on entry and, on exit, cancelled
    (as a cancelled ``wait()`` would) and reaped if it still runs::

        async with hakurei.Container("/bin/sh", ops=...) as c:
            await c.serve()
            status = await c.wait()

    A container dropped while it runs is killed, with a ``ResourceWarning``.
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
        fork_server: bool | None = None,
        process_group: bool = False,
        **params: Unpack[ParamsKw],
    ) -> None:
        self.params = Params(path, args, **params)
        check_wait("wait_delay", wait_delay)  # trio's move_on_after would take inf or NaN
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.extra_files = list(extra_files)
        self.wait_delay = wait_delay
        self.fork_server = fork_server
        self.process_group = process_group
        self._shim: Process | None = None
        self._setup: Setup | None = None
        self._serving = False
        self._waiting = trio.Lock()
        #: run() sends the record right after start(): spawn may preload it
        self._preload = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._cancel()

    def __del__(self) -> None:
        shim = getattr(self, "_shim", None)
        if shim is not None and not shim.done:
            warnings.warn(
                f"hakurei container {shim.pid} was dropped while running; killed",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )
            shim.abandon()

    def __str__(self) -> str:
        return str(self.params)

    @property
    def pid(self) -> int | None:
        """The pid of the process started for it, once started: the shim (cold) or init
        (cloned by the fork server).  Signals to it reach the container."""
        return self._shim.pid if self._shim else None

    @property
    def via(self) -> str | None:
        """How it was started: "fork server" or "cold" (None before ``start``)."""
        return self._shim.via if self._shim else None

    @property
    def returncode(self) -> int | None:
        return self._shim.status if self._shim else None

    @property
    def program_started(self) -> bool:
        """Whether init reported the program started (final once the container is reaped).

        A container cancelled before that has a status of its own (128+SIGUSR2
        if the setup was never read), which is not the program's.
        """
        return self._shim is not None and self._shim.started

    async def start(self) -> None:
        """Spawn the shim.  Raises StartError (or OpError for a bad op) on failure."""
        if self._shim is not None:
            raise StartError("container: already started")
        setup = self._setup = self.params.resolve(len(self.extra_files))

        def start() -> Process:
            return spawn(
                setup,
                self.stdin,
                self.stdout,
                self.stderr,
                self.extra_files,
                fork_server=self.fork_server,
                preload=self._preload,
                process_group=self.process_group,
            )

        if not self.process_group and forkserver.would_start_server(self.fork_server):
            # Once per process: the new server imports the init path (~20-40 ms)
            # before it answers; a thread waits for that, not the event loop.
            self._shim = await trio.to_thread.run_sync(start)
        else:
            self._shim = start()  # a fork away, or a vfork+exec

    def amend(self, *, ops: list[Any] | None = None, env: dict[str, str] | None = None) -> None:
        """Between ``start()`` and ``serve()``: append ``ops`` and set ``env`` variables.

        What a container gets can depend on host work done while its init
        waits for the record (the launcher loads a PulseAudio module, and binds
        its socket only if that worked).  Validated as in the constructor.
        The ops run after the constructor's, so they cannot create anything
        under a root those made read-only: a caller that amends builds its
        final ``remount`` itself, last.
        """
        shim = self._shim
        if shim is None or self._serving or shim.preloaded or self._setup is None:
            raise StartError("container: amend() only between start() and serve()")
        p = self.params
        if ops:
            p.ops = p.ops + list(ops)
        if env:
            names = {entry.split("=", 1)[0] for entry in env_entries(env)}
            kept = [entry for entry in p.env if entry.split("=", 1)[0] not in names]
            p.env = kept + env_entries(env)
        try:
            check_params(p)
            for op in p.ops:
                op.validate()
            setup = p.resolve(len(self.extra_files))
        except BaseException:
            p.ops, p.env = self._setup.ops, self._setup.env
            raise
        self._setup = setup

    async def serve(self) -> None:
        """Send the setup record and wait until the program runs.

        Raises ``StartError`` with the line init printed if the container's
        setup fails (the container has then exited with status 125).  A
        program that cannot be executed is not an error here: ``wait()``
        returns its 126 or 127, as a shell would.
        """
        shim = await self._send()
        try:
            await self._until_started(shim)
        except BaseException:
            await self._cancel()
            raise
        if shim.setup_error() is not None:
            await self.wait()
            error = shim.setup_error()
            assert error is not None
            raise error

    async def _send(self) -> Process:
        """Send the setup record (init then builds the container); no wait for the program."""
        shim, setup = self._shim, self._setup
        if shim is not None and shim.preloaded and not self._serving:
            self._serving = True
            return shim  # the record went with the start
        if shim is None or setup is None or shim.setup_w is None:
            raise StartError("invalid serve")
        self._serving = True
        stream = trio.lowlevel.FdStream(shim.setup_w)
        shim.setup_w = None
        try:
            try:
                await stream.send_all(encode(setup))
            except trio.BrokenResourceError:
                pass  # the shim exited early; its report and status say why
            except BaseException:
                # Cancelled with the record unsent or half sent: the cancel
                # signal before the stream ends (as in _cancel), so the shim
                # finds it pending and ends quietly, not as a bad record.
                shim.signal(CANCEL_SIGNAL)
                raise
            finally:
                shim.end_setup()
                await stream.aclose()
        except BaseException:
            await self._cancel()
            raise
        return shim

    @staticmethod
    async def _until_started(shim: Process) -> None:
        """Read the shim's reports until init says the program runs, or why it does not."""
        while not shim.started and shim.failure is None and shim.report is not None:
            await trio.lowlevel.wait_readable(shim.report)
            if not shim.listen(0):
                return  # the shim is gone; wait() gives its status

    async def wait(self) -> int:
        """Wait for the container; its exit status (see ``run_sync``).

        Any number of tasks may wait; one polls, the others queue on a lock
        and find the status.  ``ServerLostError`` if the fork server that
        started it died (the container died with it).
        """
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
            async with self._waiting:
                if shim.status is None:
                    await trio.lowlevel.wait_readable(shim.exit_fd)
                    shim.reap()
        except BaseException:
            await self._cancel()
            raise
        assert shim.status is not None
        return shim.status

    async def _cancel(self) -> None:
        """Cancel signal, then SIGKILL after ``wait_delay``; always reaps.

        The reaping goes through the wait lock: if another task is already
        polling in ``wait()``, it sees the exit and reaps, and we find the status.
        """
        shim = self._shim
        if shim is None or shim.done:
            return
        with trio.CancelScope(shield=True):
            # The signal first: a shim still waiting for its setup then finds it
            # pending when the stream ends, and ends as cancelled, quietly.
            shim.signal(CANCEL_SIGNAL)
            shim.close_setup()
            with trio.move_on_after(self.wait_delay):
                await self._reap()
                return
            shim.signal(SIGKILL)
            await self._reap()

    async def _reap(self) -> None:
        shim = self._shim
        assert shim is not None
        async with self._waiting:
            if not shim.done:
                await trio.lowlevel.wait_readable(shim.exit_fd)
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
    task_status: trio.TaskStatus[Container] = trio.TASK_STATUS_IGNORED,
    **kwargs: Unpack[ContainerKw],
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

    ``await nursery.start(hakurei.run, ...)`` returns the ``Container`` once
    its program runs (a setup failure raises there instead); ``run`` then
    goes on waiting for it in the nursery.
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
            c._preload = task_status is trio.TASK_STATUS_IGNORED  # _send() follows at once
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
                if task_status is trio.TASK_STATUS_IGNORED:
                    # Nobody waits for the program to start: one wake-up less per
                    # container; a setup failure is raised below, with the output.
                    await c._send()
                else:
                    await c.serve()
                    task_status.started(c)
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
    assert c._shim is not None
    failed = c._shim.setup_error(result)
    if failed is not None:
        raise failed
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
