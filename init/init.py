"""Init: PID 1 of the container.  Read top to bottom, this is the whole story.

The shim forks this after unsharing the namespaces.  Init holds every
capability in the new user namespace (nothing was exec'd since unshare), so it
needs no ambient capabilities for setup.  It

1. ties its life to the shim (pdeathsig, closed against the fork race),
2. builds the filesystem from the ops (reference §4.5): host view → early
   steps; a private tmpfs intermediate root → apply steps under /sysroot;
   second pivot into /sysroot and the host tree detached,
3. drops capabilities, sets no_new_privs, scopes itself with landlock and
   loads the seccomp program the parent compiled,
4. starts the program as its child (PID 2) with extra fds renumbered to 3..,
5. reaps every process, forwards signals, and exits with the program's status
   once no process is left or the adopt-wait delay has passed.

Every step has one fatal message naming it.  Nothing is imported after the
first pivot (the host filesystem is gone then); an import hook enforces that.
"""

from __future__ import annotations

import _signal
import errno
import os
import sys

from ..capnames import name as cap_name
from ..errors import (
    EXIT_SETUP,
    HakureiError,
    PathError,
    ProgramError,
    describe,
    q,
    show,
    strerror,
)
from ..ops.base import State
from . import forkexec as _forkexec
from . import pty as _pty
from .kernel import (
    CAP_SYS_ADMIN,
    CLONE_NEWUSER,
    LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
    LANDLOCK_SCOPE_SIGNAL,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    MS_SILENT,
    MS_SLAVE,
    SI_KERNEL,
    Kernel,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from ..wire import Setup

KERNEL_TOO_OLD = "hakurei needs Linux 5.12 or later"

#: Where the intermediate root is mounted: always present, private to init,
#: and anonymous once pivoted away (Go commit 356b42a).
INTERMEDIATE = "/proc/self/fd"

#: Signals the shim passes on to init, and init acts on (SIGUSR2 is the
#: parent's cancel signal; SIGTSTP and SIGCONT stop and resume the container's
#: processes with the shim).  One tuple, so a relayed signal is always handled.
RELAYED = (
    _signal.SIGHUP,
    _signal.SIGINT,
    _signal.SIGQUIT,
    _signal.SIGTERM,
    _signal.SIGUSR2,
    _signal.SIGTSTP,
    _signal.SIGCONT,
)
#: Signals init takes synchronously (blocked, then sigtimedwait): PID 1 gets
#: only signals it handles or blocks, and Python handlers cannot run in a
#: thread-free loop that also reaps.
HANDLED = (_signal.SIGCHLD, *RELAYED)
FORWARDED = (_signal.SIGHUP, _signal.SIGQUIT, _signal.SIGTERM)
#: Reset to default in the program: Python ignores SIGPIPE and SIGXFSZ.
DEFAULTED = (*HANDLED, _signal.SIGPIPE, _signal.SIGXFSZ)
SIGNAMES = {
    _signal.SIGHUP: "hangup",
    _signal.SIGINT: "interrupt",
    _signal.SIGQUIT: "quit",
    _signal.SIGTERM: "terminated",
    _signal.SIGUSR2: "user defined signal 2",
}


#: Where a name is looked up when the program's environment has no PATH:
#: glibc's execvp default (``confstr(_CS_PATH)``) since 2.24, and so bwrap's.
EXEC_DEFAULT_PATH = "/bin:/usr/bin"
#: Errors after which execvp tries the next PATH entry (glibc posix/execvpe.c);
#: EACCES is remembered as well, any other error ends the search.
LOOKUP_SKIPPED = (errno.ENOENT, errno.ENOTDIR, errno.ESTALE, errno.ENODEV, errno.ETIMEDOUT)


#: How init holds the host's /proc across the pivot (``disable_userns``).
PROC_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class NotInPath(ProgramError):
    """A program name was not found in the container's PATH (127, as a shell says it)."""

    def __init__(self, name: str, search: str) -> None:
        super().__init__(name, errno.ENOENT)
        self.search = search

    def __str__(self) -> str:
        return f"cannot start {show(self.path)}: not found in PATH {q(self.search)}"


class Fatal(HakureiError):
    """A step failed: ``<step message>: <cause>``, exit status 125."""


def kept(s: Setup) -> int:
    """The capabilities the program keeps: ``caps``, and CAP_SYS_ADMIN for ``privileged``."""
    return s.caps | (1 << CAP_SYS_ADMIN if s.privileged else 0)


class LateImportBlocker:
    """Refuses every import once the host filesystem is out of reach.

    Without it a forgotten lazy import would fail only on the code path that
    needs it, deep inside a running container; with it, any late import fails
    the container loudly, so the integration suite proves there is none.
    """

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        raise ImportError(f"late import of {name} after the host filesystem was detached")


class Init:
    """One init run: the steps below, in order, over the kernel seam ``k``."""

    def __init__(self, k: Kernel, setup: Setup, extra: list[int]) -> None:
        self.k = k
        self.s = setup
        self.extra = extra
        #: the shim's report channel to the parent (see ``tell``), -1 if none
        self.report = -1
        #: the program's terminal (init/pty.py): slave path and init's hold on it
        self.tty: tuple[str, int] | None = None
        #: the program runs in a landlock domain below ours, so init may be dumpable
        self.visible = False
        #: which of fds 0-2 were terminals in the CLI (bit ``1 << fd``): they get the slave
        self.tty_mask = 0
        #: the shim's "did the program start" pipe (``signal_started``), -1 if none
        self.started_fd = -1
        self.st = State(
            k,
            parent_perm=setup.parent_perm,
            retain_session=setup.retain_session,
            verbose=self.verbose,
        )

    def verbose(self, msg: str) -> None:
        if self.s.verbose:
            say(f"init: {msg}")

    def step(self, what: str, fn: object, *args: object) -> object:
        """Run one syscall step; an OSError becomes ``Fatal('<what>: <cause>')``."""
        try:
            return fn(*args)  # type: ignore[operator]
        except OSError as e:
            cause = strerror(e.errno) if e.errno else describe(e)
            raise Fatal(f"{what}: {cause}") from None

    # -- 1. identity ----------------------------------------------------------
    def identity(self, alive_fd: int) -> None:
        k = self.k
        self.step("cannot set the parent-death signal", k.set_pdeathsig, _signal.SIGKILL)
        # The shim holds the write end for its whole life: EOF means it died
        # before pdeathsig was armed, and nobody would ever kill us.
        os.set_blocking(alive_fd, False)
        try:
            if os.read(alive_fd, 1) == b"":
                k.exit(EXIT_SETUP)
        except BlockingIOError:
            pass
        os.close(alive_fd)
        self.step("cannot set the process name", k.set_name, "init")
        try:
            k.set_ptracer(0)
        except OSError as e:  # Yama may be absent; the reference keeps going
            self.verbose(f"cannot enable ptrace protection via Yama LSM: {describe(e)}")
        self.step("cannot set SUID_DUMP_DISABLE", k.set_dumpable, False)
        if self.s.hostname:
            self.step("cannot set hostname", k.sethostname, self.s.hostname)
        if not self.s.host_net:
            self.step("cannot bring up the loopback interface", k.loopback_up)

    # -- 2. filesystem ----------------------------------------------------------
    def op_error(self, phase: str, i: int, e: BaseException) -> Fatal:
        if isinstance(e, HakureiError):
            msg = f"{e}"
        else:
            op = self.s.ops[i]
            msg = f"cannot {phase} op at index {i} ({op.TAG} {op}): {describe(e)}"
        if getattr(e, "errno", None) == errno.ENOSYS:
            # openat2 (5.6), the new mount API (5.2), statx's mount-root bit
            # (5.8) and mount_setattr (5.12): say so rather than leave a bare ENOSYS.
            msg += f" ({KERNEL_TOO_OLD})"
        return Fatal(msg)

    def filesystem(self) -> None:
        k, st = self.k, self.st
        self.step("cannot make / rslave", k.mount, "", "/", "", MS_SILENT | MS_SLAVE | MS_REC, "")
        for i, op in enumerate(self.s.ops):
            try:
                op.early(st)
            except Exception as e:
                raise self.op_error("prepare", i, e) from None

        self.step(
            "cannot mount intermediate root",
            k.mount,
            "rootfs",
            INTERMEDIATE,
            "tmpfs",
            MS_NODEV | MS_NOSUID,
            "",
        )
        self.step("cannot enter intermediate host path", k.chdir, INTERMEDIATE)
        self.step("cannot create sysroot", k.mkdir, "sysroot", 0o755)
        self.step(
            "cannot bind sysroot", k.mount, "sysroot", "sysroot", "", MS_SILENT | MS_BIND | MS_REC
        )
        self.step("cannot create host", k.mkdir, "host", 0o755)
        sys.meta_path.insert(0, LateImportBlocker)
        self.step("cannot pivot into intermediate root", k.pivot_root, INTERMEDIATE, "host")
        self.step("cannot enter intermediate root", k.chdir, "/")

        for i, op in enumerate(self.s.ops):
            if op.PREFIX:
                self.verbose(f"{op.PREFIX} {op}")
            try:
                op.apply(st)
            except Exception as e:
                raise self.op_error("apply", i, e) from None

        self.step(
            "cannot make host root rprivate",
            k.mount,
            "host",
            "host",
            "",
            MS_SILENT | MS_REC | MS_PRIVATE,
        )
        self.step("cannot unmount host root", k.umount2, "host", MNT_DETACH)
        fd = self.step("cannot open intermediate root", k.open, "/", os.O_DIRECTORY | os.O_RDONLY)
        assert isinstance(fd, int)
        self.step("cannot enter sysroot", k.chdir, "/sysroot")
        self.step("cannot pivot into sysroot", k.pivot_root, ".", ".")
        self.step("cannot re-enter intermediate root", k.fchdir, fd)
        self.step("cannot unmount intermediate root", k.umount2, ".", MNT_DETACH)
        self.step("cannot enter root", k.chdir, "/")
        self.step("cannot close intermediate root", k.close, fd)

    # -- 3. privileges ---------------------------------------------------------
    def privileges(self, last_cap: int) -> None:
        """Keep only ``kept`` capabilities, no_new_privs, landlock, block, then the filters.

        A kept capability stays in the bounding, permitted and inheritable sets
        and is raised in the ambient set, so a program of any uid still holds
        it after its exec (bwrap's ``--cap-add``); init itself lets go of all
        of them once the program runs (``let_go``).
        """
        k, s = self.k, self.s
        full = (1 << (last_cap + 1)) - 1
        keep = kept(s) & full
        self.step("cannot clear the ambient capability set", k.ambient_clear_all)
        for cap in range(last_cap + 1):
            if keep >> cap & 1:
                continue
            self.step("cannot drop capability from bounding set", k.capbset_drop, cap)
        if keep:
            # Ambient needs the cap in permitted and inheritable; inheritable
            # starts empty after unshare.
            self.step("cannot capset", k.capset, full, full, keep)
            for cap in range(last_cap + 1):
                if keep >> cap & 1:
                    self.step(f"cannot raise {cap_name(cap)}", k.ambient_raise, cap)
        self.step("cannot capset", k.capset, 0, keep, keep)
        self.step("cannot set no_new_privs", k.set_no_new_privs)
        self.landlock()
        if s.block_fd >= 0:
            # bwrap's --block-fd: the caller says when the program may start.
            self.verbose(f"waiting on block fd {s.block_fd}")
            self.step("cannot read block fd", k.read, s.block_fd, 1)
            self.step("cannot close block fd", k.close, s.block_fd)
        if s.bpf is None:
            self.verbose("syscall filter not configured")
        else:
            self.step("cannot load syscall filter", k.seccomp_load, s.bpf)
            self.verbose(f"{s.nrules} filter rules loaded")
        # The caller's raw programs bind the program only: start() loads them in
        # its child (init/forkexec.py), since init's own calls are not theirs.

    def let_go(self) -> None:
        """Init's own capabilities, gone once the program holds what it keeps.

        Lowering permitted and inheritable clears the ambient set with them; the
        bounding set needs CAP_SETPCAP to shrink, and bounds nothing init execs.
        """
        if kept(self.s):
            self.step("cannot drop init's capabilities", self.k.capset, 0, 0, 0)

    def nest_userns(self, proc: int) -> None:
        """bwrap's ``--disable-userns``: a user namespace nobody inside can leave or add to.

        ``max_user_namespaces`` is set to 1 in our user namespace (init may:
        it holds CAP_SYS_RESOURCE there), then init enters a user namespace
        nested in it, which uses that one slot.  Inside, creating another
        counts against every ancestor's limit and fails, and raising the limit
        needs CAP_SYS_RESOURCE in the outer namespace, which nobody inside has.
        ``proc`` is the host's /proc, opened before the pivot.
        """
        k, s = self.k, self.s

        def put(name: str, data: bytes) -> None:
            fd = k.openat(proc, name, os.O_WRONLY | os.O_CLOEXEC)
            try:
                k.write(fd, data)
            finally:
                k.close(fd)

        self.step(
            "cannot set sysctl user.max_user_namespaces to 1",
            put,
            "sys/user/max_user_namespaces",
            b"1",
        )
        self.step("cannot create the nested user namespace", k.unshare, CLONE_NEWUSER)
        # Not dumpable, our /proc files belong to the host's root, and the maps
        # could not be opened; nothing else runs in the container yet.
        self.step("cannot set SUID_DUMP_USER", k.set_dumpable, True)
        # One line each, as an unprivileged creator may: the same ids as outside.
        self.step(
            "cannot write the nested uid map", put, "self/uid_map", f"{s.uid} {s.uid} 1\n".encode()
        )
        self.step(
            "cannot deny setgroups in the nested user namespace", put, "self/setgroups", b"deny\n"
        )
        self.step(
            "cannot write the nested gid map", put, "self/gid_map", f"{s.gid} {s.gid} 1\n".encode()
        )
        self.step("cannot set SUID_DUMP_DISABLE", k.set_dumpable, False)

    def assert_userns_disabled(self) -> None:
        """bwrap's ``--assert-userns-disabled``: creating a user namespace must fail here."""
        try:
            self.k.unshare(CLONE_NEWUSER)
        except OSError:
            return
        raise Fatal("creation of new user namespaces was not disabled as requested")

    def landlock(self) -> None:
        k, s = self.k, self.s
        scoped = LANDLOCK_SCOPE_SIGNAL
        if not s.host_abstract:
            scoped |= LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
        try:
            abi = k.landlock_abi()
        except OSError as e:
            if s.host_abstract:
                return
            raise Fatal(f"cannot get landlock ABI: {describe(e)}") from None
        if abi < 6:
            if s.host_abstract:
                return
            raise Fatal("kernel version too old for LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET")
        self.verbose(f"landlock abi version {abi}")
        self.step("cannot enforce landlock ruleset", k.landlock_scope, scoped)

    # -- 4. the program ----------------------------------------------------------
    def start(self, umask: int) -> int:
        """Enter the working directory, then spawn the program (PID 2).

        ``dir`` and then each ``dir_fallback`` is tried (the parent's ``dir=None``
        is "the caller's directory if the container has it, else HOME, else /").
        A name without ``/`` is looked up here, in the container, in the
        program's ``PATH``, because only here is the container's tree visible.
        """
        k, s = self.k, self.s
        k.umask(umask)
        dirs = [s.dir, *s.dir_fallback]
        for i, d in enumerate(dirs):
            try:
                k.chdir(d)
                entered = d
                break
            except OSError as e:
                if i == len(dirs) - 1:
                    raise PathError("chdir", d, e.errno or 0) from None
                self.verbose(f"cannot chdir {show(d)}: {strerror(e.errno or 0)}")
        # Extra fds arrive at setup+1..; the program gets them at 3.. (Go
        # ExtraFiles).  Originals are close-on-exec, so only the copies survive.
        actions: list[tuple[object, ...]] = []
        if self.tty is not None:
            actions += _pty.spawn_actions(self.tty[0], self.tty_mask)
        for i, fd in enumerate(self.extra):
            os.set_inheritable(fd, False)
            actions.append((os.POSIX_SPAWN_DUP2, fd, 3 + i))
        env = {}
        for entry in s.env:
            key, _, value = entry.partition("=")
            env[key] = value
        if s.set_pwd:  # bubblewrap's: PWD names where the program starts, whatever it inherited
            env["PWD"] = entered
        self.verbose(f"starting initial program {show(s.path)}")

        nested = self.nested_scope()
        self.show_init()  # before the spawn: a caller told the pid may look at once

        def spawn(path: str) -> int:
            if s.seccomp_programs or nested:
                try:
                    return _forkexec.fork_exec(
                        k,
                        path,
                        s.args,
                        env,
                        file_actions=actions,
                        setsid=not s.retain_session,
                        sigdef=DEFAULTED,
                        programs=s.seccomp_programs,
                        landlock_scope=nested,
                    )
                except _forkexec.LoadError as e:
                    raise Fatal(f"cannot load seccomp program: {strerror(e.errno or 0)}") from None
            return k.posix_spawn(
                path,
                s.args,
                env,
                file_actions=actions,
                setsid=not s.retain_session,
                setsigmask=(),
                setsigdef=DEFAULTED,
            )

        def replace(path: str) -> int:
            k.execve(path, s.args, env)
            raise AssertionError("execve returned")  # pragma: no cover

        if not s.as_pid_1:
            return self.find(spawn, env)
        self.prepare_exec()
        try:
            return self.find(replace, env)
        finally:  # only reached when every exec failed
            self.signal_started(b"f")

    def nested_scope(self) -> int:
        """The landlock scope of the program's own domain when init is to be visible, else 0.

        Needs scopes (ABI 6): without them nothing keeps the program from
        ptracing a dumpable init, so init stays undumpable (and invisible).
        """
        if not self.s.visible_init or self.s.as_pid_1:
            return 0
        try:
            abi = self.k.landlock_abi()
        except OSError:
            abi = 0
        if abi < 6:
            self.verbose("init stays undumpable: the kernel has no landlock scopes")
            return 0
        self.visible = True
        return LANDLOCK_SCOPE_SIGNAL

    def show_init(self) -> None:
        """``visible_init``: dumpable, as the program will run in a domain below ours.

        Nothing else runs in the container yet; the program (and all it
        starts) gets its nested domain before its exec, in forkexec's child.
        """
        if self.visible:
            self.step("cannot set SUID_DUMP_USER", self.k.set_dumpable, True)

    def prepare_exec(self) -> None:
        """``as_pid_1``: what posix_spawn would do in the child, done to init itself."""
        k = self.k
        if self.tty is not None:
            raise Fatal("a program that is PID 1 gets no terminal of its own (use --no-pty)")
        for i, fd in enumerate(self.extra):
            if fd == 3 + i:
                os.set_inheritable(fd, True)
            else:
                k.dup2(fd, 3 + i)
        if self.s.sync_fd >= 0:
            os.set_inheritable(self.s.sync_fd, True)  # bwrap leaks it to PID 1 as well
        tell(self.report, "started")
        self.signal_started(b"s")  # the pipe is close-on-exec: a failed exec adds "f"
        k.default_signals(DEFAULTED)
        k.set_signal_mask(())
        for i, program in enumerate(self.s.seccomp_programs):  # last: they may deny the rest
            self.step(f"cannot load seccomp program {i}", k.seccomp_load_prctl, program)

    def signal_started(self, what: bytes) -> None:
        """Tell the shim that the program started (``s``) or, as PID 1, failed to (``f``)."""
        if self.started_fd >= 0:
            try:
                self.k.write(self.started_fd, what)
            except OSError:
                pass  # the shim is gone: pdeathsig ends us

    def find(self, launch: Callable[[str], int], env: dict[str, str]) -> int:
        """``launch`` the program at its path, or at each place of the container's PATH."""
        s = self.s
        if "/" in s.path:  # absolute, or relative to the directory just entered
            try:
                return launch(s.path)
            except OSError as e:
                raise ProgramError(s.path, e.errno or 0) from None
        # A name: the program's PATH, searched as glibc's execvp does (an empty
        # entry is the working directory).  Init's own environment plays no part.
        search = env.get("PATH", EXEC_DEFAULT_PATH)
        denied = False
        for d in search.split(":"):
            path = os.path.join(d, s.path)
            try:
                return launch(path)
            except OSError as e:
                err = e.errno or 0
                if err == errno.EACCES:  # remembered; the search goes on
                    denied = True
                elif err not in LOOKUP_SKIPPED:
                    raise ProgramError(path, err) from None
        if denied:
            raise ProgramError(s.path, errno.EACCES)
        raise NotInPath(s.path, search)

    # -- 5. PID 1 ----------------------------------------------------------------
    def serve(self, pid: int) -> NoReturn:
        """Reap everything; exit with the program's status when nothing is left."""
        k, s = self.k, self.s
        tell(self.report, "started")
        result = 2  # no status seen for the program (reference §4.11)
        deadline: float | None = None
        program_alive = True
        while True:
            while True:
                try:
                    got, status = k.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    self.exit(result)
                except OSError as e:  # Go: print, then exit with what we have
                    say(f"{ERROR_PREFIX}unexpected wait4 response: {describe(e)}")
                    self.exit(result)
                if got == 0:
                    break
                if got == pid:
                    program_alive = False
                    result = self.program_status(status)
                    # Before the orphan wait: if the parent's kill timer ends
                    # that wait, the parent still reports the program's status.
                    tell(self.report, f"exited {result}")
                    deadline = k.monotonic() + s.adopt_wait_delay
                    for fd in self.extra:
                        k.close(fd)
                    self.extra = []
            if deadline is None:
                sig, code = k.sigwaitinfo(HANDLED)
            else:
                left = deadline - k.monotonic()
                timed = k.sigtimedwait(HANDLED, max(left, 0.0)) if left > 0 else None
                if timed is None:
                    if s.adopt_wait_delay > 0:  # with no wait asked for, nothing was exceeded
                        say(f"{ERROR_PREFIX}timeout exceeded waiting for lingering processes")
                    self.exit(result)
                sig, code = timed
            if sig == _signal.SIGCHLD:
                continue
            if code == SI_KERNEL and s.retain_session:
                # Sharing the caller's terminal, init and the program are in
                # its foreground group: what the terminal sent (Ctrl-C, Ctrl-\,
                # Ctrl-Z, a hangup) reached the program too.  Passing it on
                # would make one Ctrl-C two; stopping everything on Ctrl-Z
                # would stop what the terminal did not.
                continue
            if sig in (_signal.SIGTSTP, _signal.SIGCONT):
                # The CLI was stopped (no terminal of its own, or kill -TSTP):
                # stop every process here as a terminal stops a foreground job,
                # with SIGSTOP (the program's orphaned session ignores SIGTSTP).
                stop = _signal.SIGSTOP if sig == _signal.SIGTSTP else _signal.SIGCONT
                try:
                    k.kill(-1, stop)
                except ProcessLookupError:
                    pass
                continue
            name = SIGNAMES.get(sig, str(sig))
            if sig == _signal.SIGUSR2 and s.forward_cancel and program_alive:
                self.verbose("forwarding context cancellation")
                self.kill(pid, _signal.SIGINT, "cannot forward cancellation")
            elif sig == _signal.SIGINT and program_alive:
                # Ctrl-C from the caller reaches the program's group, as on a
                # terminal: its handler runs and its status is the container's.
                self.verbose(f"got {name}, forwarding to initial process")
                self.kill(pid if s.retain_session else -pid, sig, "cannot forward signal")
            elif sig in FORWARDED and program_alive:
                self.verbose(f"got {name}, forwarding to initial process")
                self.kill(pid, sig, "cannot forward signal")
            elif sig == _signal.SIGUSR2:
                # Cancelled: while the program runs this ends it (Go exits 0);
                # once it is gone it only cuts the wait for orphans short.
                self.verbose(f"got {name}")
                self.exit(0 if program_alive else result)
            else:
                # SIGINT, or a termination signal once the program is gone:
                # PID 1 exiting takes the whole namespace down.
                self.verbose(f"got {name}")
                self.exit(128 + sig if program_alive else result)

    def program_status(self, status: int) -> int:
        if os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
            self.verbose(f"initial process exited with code {code}")
            return code
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            self.verbose(f"initial process exited with signal {sig}")
            return 128 + sig
        self.verbose(f"initial process exited with status {status:#x}")
        return 255

    def kill(self, pid: int, sig: int, what: str) -> None:
        try:
            self.k.kill(pid, sig)
        except OSError as e:
            say(f"{ERROR_PREFIX}{what}: {describe(e)}")

    def exit(self, status: int) -> NoReturn:
        self.k.exit(status)


#: What an error line starts with: ``hakurei: ``, or the record's ``message_prefix``
#: (``bwrap: `` for the front end, whose users grep for bubblewrap's words).
ERROR_PREFIX = "hakurei: "


def say(line: str) -> None:
    try:
        os.write(2, (line + "\n").encode(errors="replace"))
    except OSError:
        pass


def tell(fd: int, line: str) -> None:
    """One line to the parent over the shim's report channel (none: ``fd`` -1).

    The channel is the setup socket, which the parent reads after the record:
    ``started`` once the program runs, ``exited N`` with its status, ``failed
    N MESSAGE`` for a fatal error.  init's stderr may be /dev/null or the
    caller's own, so this is how a library caller learns what went wrong.
    """
    if fd >= 0:
        try:
            os.write(fd, (line.replace("\n", " ") + "\n").encode(errors="replace"))
        except OSError:
            pass  # the parent is gone or never listened: nobody to tell


def main(
    k: Kernel,
    setup: Setup,
    extra: list[int],
    alive_fd: int,
    report: int = -1,
    pty: tuple[int, int, int, int] | None = None,
    started: int = -1,
    go: int = -1,
) -> NoReturn:
    """Entry from the shim's fork.  Never returns; never prints a traceback.

    ``pty`` (the CLI in a terminal): the socket to pass the program's pty
    master back on, the window's rows and columns, and which of the CLI's
    fds 0-2 are terminals (bit ``1 << fd``; only those get the slave).
    ``started``: a pipe to tell the shim the program started (``s``).
    ``go``: with ``userns_block_fd``, a pipe the shim writes once the id
    maps are written from outside; nothing is done before.
    """
    global ERROR_PREFIX
    ERROR_PREFIX = setup.message_prefix
    try:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, HANDLED)
        _signal.set_wakeup_fd(-1)
        if go >= 0:
            if k.read(go, 1) == b"":  # the shim died before letting us go
                k.exit(EXIT_SETUP)
            k.close(go)
        if setup.userns_block_fd >= 0:
            k.close(setup.userns_block_fd)  # the shim's to read, not ours
        if setup.as_pid_1 and not setup.retain_session:
            # The program will be this process: a session of its own now, as
            # posix_spawn's setsid would give it (a group leader could not).
            k.setsid()
        elif not setup.retain_session:
            # Out of the caller's process group: a terminal's Ctrl-C/Ctrl-Z
            # reach the CLI alone, which relays them once (not twice).
            os.setpgid(0, 0)
        if setup.sync_fd >= 0:
            os.set_inheritable(setup.sync_fd, False)  # init holds it; the program never does
        if setup.userns2_fd >= 0:
            os.set_inheritable(setup.userns2_fd, False)  # closed once joined, never the program's
        run = Init(k, setup, extra)
        run.report = report
        run.started_fd = started
        run.identity(alive_fd)
        umask = k.umask(0)
        last_cap = int(k.read_file("/proc/sys/kernel/cap_last_cap"))
        # The host's /proc, for the sysctl and the nested id maps after the pivot.
        proc = -1
        if setup.disable_userns:
            proc = run.step("cannot open /proc", k.open, "/proc", PROC_FLAGS)  # type: ignore[assignment]
        run.filesystem()
        if pty is not None:
            sock, rows, cols, run.tty_mask = pty
            run.tty = run.step(  # type: ignore[assignment]
                "cannot open a terminal in the container (give it a /dev, or use --no-pty)",
                _pty.allocate,
                k,
                sock,
                rows,
                cols,
            )
            assert run.tty is not None
            # Init lets go of the user's terminal too (nothing in the container
            # holds it), and its own messages (127, -v) come in order with the
            # program's; a stdout or stderr that is no terminal stays as it is.
            for fd in _pty.slave_fds(run.tty_mask):
                k.dup2(run.tty[1], fd)
        if setup.userns2_fd >= 0:
            # bwrap's --userns2: the program runs in that user namespace (one
            # below ours, which init holds CAP_SYS_ADMIN in), set up for it.
            run.step(
                "cannot join the user namespace of userns2 fd",
                k.setns,
                setup.userns2_fd,
                CLONE_NEWUSER,
            )
            k.close(setup.userns2_fd)
        if proc >= 0:
            run.nest_userns(proc)
            k.close(proc)
        if setup.disable_userns or setup.assert_userns_disabled:
            run.assert_userns_disabled()
        run.privileges(last_cap)
        pid = run.start(umask)
        run.signal_started(b"s")
        if started >= 0:
            k.close(started)
        run.let_go()
        if run.tty is not None:  # the program has the slave open now (vfork semantics)
            os.close(run.tty[1])
        run.serve(pid)
    except HakureiError as e:
        say(f"{ERROR_PREFIX}{e}")
        tell(report, f"failed {e.status} {e}")
        k.exit(e.status)
    except BaseException as e:  # a bug: still one line, still no traceback
        say(f"{ERROR_PREFIX}init: {type(e).__name__}: {describe(e)}")
        tell(report, f"failed {EXIT_SETUP} init: {type(e).__name__}: {describe(e)}")
        k.exit(EXIT_SETUP)
