"""The blocking face: ``run_sync``, a container run to completion without trio.

For callers that are not trio programs (scripts, threads, other event
loops).  It must not import trio (70 ms): everything here is poll(2) on the
handle's fds.
"""

from __future__ import annotations

from .params import Params
from .results import Completed, check_run_args, decoded
from .spawn import spawn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Unpack

    from .params import ParamsKw
    from .results import Stdio


def _read_all(f: Any) -> bytes | None:
    if f is None:
        return None
    f.seek(0)
    data: bytes = f.read()
    return data


def run_sync(
    path: str,
    args: list[str] | None = None,
    *,
    stdin: Stdio = None,
    stdout: Stdio = None,
    stderr: Stdio = None,
    extra_files: Any = (),
    input: bytes | str | None = None,
    capture_output: bool = False,
    timeout: float | None = None,
    check: bool = False,
    text: bool = False,
    fork_server: bool | None = None,
    **params: Unpack[ParamsKw],
) -> Completed:
    """Run a container to completion without trio (blocking), like ``subprocess.run``.

    ``returncode`` is the program's code, 128+n if it was killed by signal n,
    126 if the program is not executable, 127 if it is missing.  A setup
    failure raises ``StartError`` with the line init printed (its
    ``result`` holds what was captured).  ``input`` is fed to stdin and
    ``capture_output`` collects stdout and stderr, all through temporary
    files, so a chatty program can never deadlock against us; ``text`` makes
    them str (UTF-8).  After ``timeout`` seconds the container is killed and
    ``subprocess.TimeoutExpired`` is raised.  Streams left as None are
    /dev/null, as in the Go original.  A KeyboardInterrupt while waiting
    kills the container before it propagates.

    ``fork_server`` chooses how the container is started: through this
    process's fork server (``forkserver.py``; the default, unless
    ``HAKUREI_FORKSERVER=0`` is set) or by a cold spawn of the shim (False).
    """
    data = check_run_args("run_sync()", stdin, stdout, stderr, input, capture_output, timeout, text)
    extra = list(extra_files)
    p = Params(path, args, **params)
    setup = p.resolve(len(extra))
    deadline = None if timeout is None else _monotonic() + timeout
    temps: list[Any] = []
    out = err = None
    try:
        if data is not None or capture_output:
            import tempfile
        if data is not None:
            stdin = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
            temps.append(stdin)
            stdin.write(data)
            stdin.seek(0)
        if capture_output:
            out = tempfile.TemporaryFile()  # noqa: SIM115
            err = tempfile.TemporaryFile()  # noqa: SIM115
            temps.extend((out, err))
            stdout, stderr = out, err
        shim = spawn(setup, stdin, stdout, stderr, extra, fork_server=fork_server, preload=True)
        try:
            if not shim.preloaded:
                shim.send(setup)
            expired = deadline is not None and not shim.exited(deadline - _monotonic())
            if expired:
                shim.abandon()
            status = shim.reap()
        except BaseException:
            shim.abandon()
            raise
        captured = _read_all(out), _read_all(err)
    finally:
        for f in temps:
            f.close()
    if expired:
        import subprocess

        assert timeout is not None
        raise subprocess.TimeoutExpired(p.args, timeout, output=captured[0], stderr=captured[1])
    result = Completed(p.args, status, decoded(captured[0], text), decoded(captured[1], text))
    failed = shim.setup_error(result)
    if failed is not None:
        raise failed
    return result.check() if check else result


def _monotonic() -> float:
    import time

    return time.monotonic()


__all__ = ["run_sync"]
