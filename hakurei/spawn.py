"""Spawners: how a container's shim comes to exist, blocked on its setup socket.

Two ways, one result (a ``process.Process``):

* **cold**: ``posix_spawn`` a fresh interpreter on the shim (``init_argv``):
  vfork+exec, safe from any thread, with nothing between spawn and exec that
  may take a lock (the parent may be a threaded trio program).  Costs an
  interpreter start and the init path's imports (~20 ms) per container.
* **fork server** (``forkserver.py``, the default): this process's server,
  started once with everything imported, forks the shim on request.

``spawn()`` chooses: the server unless ``fork_server=False`` or
``HAKUREI_FORKSERVER=0``, and the cold path whenever the server cannot be had
(it could not start, or the request cannot travel through it).  By default
the first start of a process is cold (and costs exactly what a cold start
costs) and the second starts the server; ``fork_server=True`` (or
``prestart()``) uses the server from the first start on.

The shim's fds are laid out like the Go original's: 0-2 stdio (None →
/dev/null), 3 the setup socket, 4.. the extra files.  A cold shim's
environment is only ``HAKUREI_SETUP=3``.
"""

from __future__ import annotations

import fcntl
import os
import sys

from .errors import ParamsError, StartError, describe
from .process import CANCEL_SIGNAL, Process, write_all
from .wire import FD_LIMIT, encode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .results import Stdio
    from .wire import Setup

SETUP_FD = 3
_SIGINT = 2  # signal.SIGINT, without importing signal on this path

#: Runs the shim without runpy or site (5-25 ms saved per container); the
#: directories that hold hakurei and its init-side dependencies follow as argv.
_INIT_CODE = "import sys;sys.path[0:0]=sys.argv[1:];from hakurei.init.shim import main;main()"

#: The sys.path entry holding hakurei, passed to ``code`` (``-S`` leaves site-packages out).
_SITE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def init_argv(code: str = _INIT_CODE) -> list[str]:
    """The interpreter command line that runs ``code`` on the init path (``-I -S``).

    The directory holding hakurei follows as argv, for ``code`` to put on
    ``sys.path``.  Nothing else is needed: the init path imports only the
    standard library (no msgpack: the record is read with ``hakurei.msgcodec``).
    """
    return [sys.executable, "-I", "-S", "-c", code, _SITE]


def _fileno(f: Stdio) -> int | None:
    """The fd behind a stdio or extra-file value; anything else is a ParamsError.

    Checked before the spawn: a negative or huge int, or an object without a
    working ``fileno()``, would otherwise surface as ValueError, OverflowError
    or AttributeError from deep inside posix_spawn's file actions.
    """
    if f is None:
        return None
    if isinstance(f, bool):
        raise ParamsError("a file must be an fd or a file object, not bool")
    if isinstance(f, int):
        fd = f
    else:
        try:
            fd = f.fileno()
        except (AttributeError, OSError, ValueError) as e:
            raise ParamsError(f"{type(f).__name__} is not an open file: {describe(e)}") from None
        if not isinstance(fd, int) or isinstance(fd, bool):
            raise ParamsError(f"{type(f).__name__}.fileno() did not return an int")
    if not 0 <= fd < FD_LIMIT:
        shown = fd if abs(fd) < 1 << 64 else "(huge)"
        raise ParamsError(f"file descriptor {shown} is out of range (0 to 2**31-1)")
    return fd


def stdio_fds(stdin: Stdio, stdout: Stdio, stderr: Stdio, extra: Any) -> list[int | None]:
    """The fds the shim gets as 0, 1, 2, 4, 5, ... (None: /dev/null), checked."""
    return [_fileno(stdin), _fileno(stdout), _fileno(stderr), *(_fileno(f) for f in extra)]


def socketpair(record: bytes | None = None) -> tuple[int, int]:
    """A close-on-exec stream socketpair: (ours, the shim's setup fd).

    With ``record`` (at most ``PRELOAD_MAX`` bytes, which the socket buffer
    holds) it is written into our end at once, before the container exists:
    init reads it as soon as it is ready instead of waiting for the caller to
    hear that the container exists first (a round trip saved per start).
    """
    import _socket  # not at module level: the CLI is its own shim and never needs it

    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    w, r = ours.detach(), theirs.detach()
    if record is not None:
        write_all(w, record)
    return w, r


#: The largest record ``spawn(preload=True)`` sends before the container exists.
PRELOAD_MAX = 32 << 10


def cold(
    fds: list[int | None], record: bytes | None = None, *, process_group: bool = False
) -> Process:
    """posix_spawn a shim with ``fds`` (``stdio_fds``) laid out around its setup socket
    (holding ``record`` already, if given); in a process group of its own with
    ``process_group``."""
    w, r = socketpair(record)
    sources = [*fds[:3], r, *fds[3:]]
    staged: list[int] = []
    try:
        # Stage every source above the highest target so the child's dup2
        # sequence can never overwrite a source it still needs.
        actions: list[tuple[Any, ...]] = []
        for target, src in enumerate(sources):
            if src is None:
                actions.append((os.POSIX_SPAWN_OPEN, target, "/dev/null", os.O_RDWR, 0))
                continue
            stage = fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, len(sources))
            staged.append(stage)
            actions.append((os.POSIX_SPAWN_DUP2, stage, target))
        argv = init_argv()
        # posix_spawn takes no "leave the group alone" value: only omitting it does that.
        group: dict[str, Any] = {"setpgroup": 0} if process_group else {}
        try:
            pid = os.posix_spawn(
                argv[0],
                argv,
                {"HAKUREI_SETUP": str(SETUP_FD)},
                file_actions=actions,
                # SIGINT blocked until the shim has made its action the default: Python
                # would otherwise turn a Ctrl-C during its start into a traceback.  The
                # cancel signal stays blocked: one that comes before init exists waits
                # for the shim's relay to pass it on, instead of killing the shim.
                setsigmask=(_SIGINT, CANCEL_SIGNAL),
                **group,
            )
        except OSError as e:
            raise StartError("start container init", e) from None
    except BaseException:
        os.close(w)
        raise
    finally:
        for fd in (r, *staged):
            os.close(fd)
    pidfd = os.pidfd_open(pid)
    return Process(pid, pidfd, w, pidfd, preloaded=record is not None)


def spawn(
    setup: Setup,
    stdin: Stdio = None,
    stdout: Stdio = None,
    stderr: Stdio = None,
    extra: Any = (),
    *,
    fork_server: bool | None = None,
    preload: bool = False,
    process_group: bool = False,
) -> Process:
    """A container for ``setup``, blocked on its setup socket (see the module docstring).

    ``process_group`` starts it cold, its shim in a process group of its own:
    a terminal's Ctrl-C to the caller's group (which a fork server, and a cold
    shim otherwise, belong to) does not reach it.

    The record itself is sent later (``Process.send``), unless ``preload``
    (for callers that send it right away: ``run_sync``, ``run``) and it is
    small; a fork server needs its ids and network choice now, to make the
    namespaces.
    """
    fds = stdio_fds(stdin, stdout, stderr, extra)
    from . import forkserver

    record = encode(setup) if preload else None
    if record is not None and len(record) > PRELOAD_MAX:
        record = None  # it could fill the socket before anyone reads: send() streams it
    if process_group:
        return cold(fds, record, process_group=True)

    if fork_server is None and forkserver.enabled() and forkserver.first_start():
        # The first start of a process is exactly a cold one (a process that
        # starts one container never pays for a server); the second starts
        # the server, which then takes every start after it.
        return cold(fds, record)
    if forkserver.enabled() if fork_server is None else fork_server:
        try:
            return forkserver.spawn(setup, fds, record)
        except forkserver.Unavailable:
            pass  # the cold path below says what is wrong, if anything is
    return cold(fds, record)


__all__ = ["SETUP_FD", "cold", "init_argv", "spawn", "stdio_fds"]
