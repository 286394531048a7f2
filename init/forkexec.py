"""posix_spawn's work by hand: for the caller's seccomp programs, and for a visible init.

bubblewrap's ``--seccomp FD``/``--add-seccomp-fd FD`` bind the program; our
init only waits and reaps, and an allowlist written for the program (bubblewrap's
tests allow little more than ``execve``, I/O and ``prctl``) would forbid what
init needs for that (``clone``, ``wait4``, ``rt_sigtimedwait``).  So init forks,
and only the child loads the programs, last thing before its ``execve``: after
the session, the file actions and the signal defaults, which need calls the
programs may deny.  A failure in the child comes back to init on a close-on-exec
pipe (end of file: the exec worked), as ``posix_spawn`` reports its own.

The same child also takes the program into a landlock domain nested below
init's (``landlock_scope``) when init is to be visible (``visible_init``):
init then becomes dumpable, so the caller may open ``/proc/INIT/ns/*`` as
bubblewrap's users do with ``child-pid``, while the kernel keeps the program
and all it starts from ptracing, reading or signalling init, which is outside
their domain.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .kernel import Kernel

#: What the child says failed, before the errno: loading a program, or the rest.
LOAD, EXEC = b"L", b"E"


class LoadError(OSError):
    """The kernel refused one of the caller's seccomp programs (not the program's exec)."""


def fork_exec(
    k: Kernel,
    path: str,
    argv: list[str],
    env: dict[str, str],
    *,
    file_actions: list[tuple[object, ...]],
    setsid: bool,
    sigdef: tuple[int, ...],
    programs: list[bytes],
    landlock_scope: int = 0,
) -> int:
    """Start ``path`` as ``posix_spawn`` would, with ``programs`` loaded in the child only.

    Returns the child's pid once its exec succeeded; raises ``OSError`` with the
    exec's errno (as ``posix_spawn`` does, so a PATH search goes on), or
    ``LoadError`` when a program could not be loaded.
    """
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = k.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits; its report is tested
        what, err = EXEC, errno.EIO
        try:
            os.close(r)
            if setsid:
                k.setsid()
            _apply(k, file_actions)
            k.default_signals(sigdef)
            k.set_signal_mask(())
            if landlock_scope:
                k.landlock_scope(landlock_scope)
            what = LOAD
            for program in programs:
                k.seccomp_load_prctl(program)
            what = EXEC
            k.execve(path, argv, env)
        except OSError as e:
            err = e.errno or errno.EIO
        except BaseException:
            pass
        try:
            os.write(w, what + err.to_bytes(4, "little"))
        finally:
            os._exit(127)
    os.close(w)
    try:
        said = b""
        while chunk := os.read(r, 5):
            said += chunk
    finally:
        os.close(r)
    if not said:
        return pid
    k.waitpid(pid, 0)
    err = int.from_bytes(said[1:5], "little")
    if said[:1] == LOAD:
        raise LoadError(err, os.strerror(err), "prctl(PR_SET_SECCOMP)")
    raise OSError(err, os.strerror(err), path)


def _apply(k: Kernel, actions: list[tuple[object, ...]]) -> None:
    """``posix_spawn``'s file actions, in order (init's: open, dup2, close)."""
    for action in actions:
        kind = action[0]
        if kind == os.POSIX_SPAWN_DUP2:
            fd, to = int(action[1]), int(action[2])  # type: ignore[call-overload]
            if fd == to:
                os.set_inheritable(fd, True)  # as glibc: dup2 onto itself clears close-on-exec
            else:
                k.dup2(fd, to)
        elif kind == os.POSIX_SPAWN_OPEN:
            to = int(action[1])  # type: ignore[call-overload]
            got = os.open(str(action[2]), int(action[3]), int(action[4]))  # type: ignore[call-overload]
            if got != to:
                k.dup2(got, to)
                os.close(got)
        elif kind == os.POSIX_SPAWN_CLOSE:
            os.close(int(action[1]))  # type: ignore[call-overload]
