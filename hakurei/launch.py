"""Parent side without trio: describe a container, spawn its shim, send the setup.

The CLI and ``run_sync`` use this directly; the trio ``Container`` wraps it.
It must not import trio (70 ms) nor pyseccomp at import time.

The shim is spawned with ``os.posix_spawn`` (vfork+exec, safe from any
thread), never with fork or ``preexec_fn``: the parent may be a threaded trio
program, and nothing between spawn and exec may take a lock.  Its fds are laid
out like the Go original's: 0-2 stdio (None → /dev/null), 3 the setup pipe's
read end, 4.. the extra files.  Its environment is only ``HAKUREI_SETUP=3``.
"""

from __future__ import annotations

import _thread
import fcntl
import os
import sys

from .errors import EXIT_SETUP, HakureiError, OpError, ParamsError, StartError, describe, q
from .ops import Op
from .params import (
    FD_LIMIT,
    Setup,
    check_params,
    check_wait,
    encode,
    env_entries,
    working_dirs,
)

#: What the parent sends to cancel a container (Go ``CancelSignal``).
CANCEL_SIGNAL = 12  # SIGUSR2
SETUP_FD = 3

#: Runs the shim without runpy or site (5-25 ms saved per container); the
#: directories that hold hakurei and its init-side dependencies follow as argv.
_INIT_CODE = "import sys;sys.path[0:0]=sys.argv[1:];from hakurei.init.shim import main;main()"

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import and the CLI path avoids it
    from typing import IO, Any, TypeAlias

    Stdio: TypeAlias = int | IO[Any] | None


def _read_sysctl(name: str) -> int:
    path = f"/proc/sys/kernel/{name}"
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError) as e:
        raise StartError(f"read {path}", e) from None


_overflow: dict[str, int] = {}


def overflow_id(kind: str) -> int:
    """/proc/sys/kernel/overflow{uid,gid}, read once: ids < 1 map to it."""
    if kind not in _overflow:
        _overflow[kind] = _read_sysctl(f"overflow{kind}")
    return _overflow[kind]


_argv: list[str] = []


def init_argv() -> list[str]:
    """The interpreter command line that starts a shim (computed once)."""
    if not _argv:
        import _prctl
        import msgpack

        dirs: list[str] = []
        for mod_file in (__file__, msgpack.__file__, _prctl.__file__):
            assert mod_file is not None
            d = os.path.dirname(os.path.abspath(mod_file))
            if mod_file != _prctl.__file__:
                d = os.path.dirname(d)  # a package: its parent is the sys.path entry
            if d not in dirs:
                dirs.append(d)
        _argv.extend([sys.executable, "-I", "-S", "-c", _INIT_CODE, *dirs])
    return _argv


class Params:
    """Everything that describes a container (Go ``Params``), as the caller gives it.

    ``resolve()`` turns it into the wire ``Setup``: ids < 1 become the
    overflow ids, the seccomp presets become BPF (cached), the adopt-wait
    default (5 s) applies when ``adopt_wait_delay`` is left out (None); 0 is no
    wait at all, and a negative delay counts as 0 (as in Go).  Validation
    happens here, in the caller's process, so a bad op or path is a clear
    ``OpError`` before anything is spawned.

    ``path`` is absolute, relative to the working directory (with a ``/``), or
    a name that init looks up in the container's ``PATH`` (from ``env``).
    ``dir`` is a path, a list of paths tried in order, or ``None``: the
    caller's directory if the container has it, else ``HOME``, else ``/``
    (``params.working_dirs``).
    """

    def __init__(
        self,
        path: str,
        args: list[str] | None = None,
        *,
        ops: list[Op] | None = None,
        env: dict[str, str] | list[str] | None = None,
        dir: str | list[str] | tuple[str, ...] | None = "/",
        uid: int = 0,
        gid: int = 0,
        hostname: str | bytes = "",
        seccomp_rules: list[Any] | None = None,
        seccomp_flags: int = 0,
        seccomp_presets: int = 0,
        seccomp_disable: bool = False,
        parent_perm: int = 0o755,
        retain_session: bool = False,
        host_net: bool = False,
        privileged: bool = False,
        forward_cancel: bool = False,
        adopt_wait_delay: float | None = None,
        host_abstract: bool = False,
        verbose: bool = False,
    ) -> None:
        # A name without "/" is looked up in the container's PATH by init (as
        # execvp does); a relative path with "/" is relative to the working
        # directory inside the container.  Only "" names nothing.
        if not isinstance(path, str) or not path:
            raise OpError(f"program path {q(str(path))} is empty (give a path or a name)")
        self.path = path
        for name, value in (("args", args), ("ops", ops)):
            if value is not None and not isinstance(value, (list, tuple)):
                raise ParamsError(f"{name} must be a list, not {type(value).__name__}")
        self.args = list(args) if args else [path]
        self.ops = list(ops or [])
        for op in self.ops:
            if not isinstance(op, Op):
                raise OpError(f"not an op: {op!r}")
            op.validate()  # fields may have been changed since the op was built
        if env is None:
            self.env: list[str] = []
        elif isinstance(env, dict):
            self.env = env_entries(env)
        elif isinstance(env, (list, tuple)):
            self.env = list(env)
        else:
            raise ParamsError(f"env must be a dict or a list, not {type(env).__name__}")
        #: where the program starts: ``dir`` first, then each fallback in turn
        self.dir, self.dir_fallback = working_dirs(dir, self.env)
        self.uid = uid
        self.gid = gid
        self.hostname = hostname
        self.seccomp_rules = list(seccomp_rules or [])
        self.seccomp_flags = seccomp_flags
        self.seccomp_presets = seccomp_presets
        self.seccomp_disable = seccomp_disable
        self.parent_perm = parent_perm
        self.retain_session = retain_session
        self.host_net = host_net
        self.privileged = privileged
        self.forward_cancel = forward_cancel
        self.adopt_wait_delay = adopt_wait_delay
        self.host_abstract = host_abstract
        self.verbose = verbose
        check_params(self)  # ParamsError now, in the caller, not an error in init later

    def __str__(self) -> str:
        argv = "[" + " ".join(q(a) for a in self.args) + "]"
        return (
            f"argv: {argv}, filter: {str(not self.seccomp_disable).lower()}, "
            f"rules: {len(self.seccomp_rules)}, flags: {self.seccomp_flags:#x}, "
            f"presets: {self.seccomp_presets:#x}"
        )

    def resolve(self, files: int, *, watch_parent: bool = True) -> Setup:
        """The wire record for a container with ``files`` extra fds.

        ``watch_parent=False`` (parent_pid 0) is for a caller that is the shim
        itself, the CLI: nobody above it is watched, as with bwrap.
        """
        if not self.ops:
            raise StartError("container: starting an invalid container (no ops)")
        bpf, nrules = self._seccomp()
        delay = self.adopt_wait_delay
        return Setup(
            self.ops,
            path=self.path,
            args=self.args,
            env=self.env,
            dir=self.dir,
            dir_fallback=self.dir_fallback,
            uid=self.uid if self.uid >= 1 else overflow_id("uid"),
            gid=self.gid if self.gid >= 1 else overflow_id("gid"),
            host_uid=os.getuid(),
            host_gid=os.getgid(),
            hostname=self.hostname,
            parent_perm=self.parent_perm or 0o755,
            retain_session=self.retain_session,
            host_net=self.host_net,
            privileged=self.privileged,
            forward_cancel=self.forward_cancel,
            host_abstract=self.host_abstract,
            adopt_wait_delay=5.0 if delay is None else max(float(delay), 0.0),
            bpf=bpf,
            nrules=nrules,
            files=files,
            parent_pid=os.getpid() if watch_parent else 0,
            verbose=self.verbose,
        )

    def _seccomp(self) -> tuple[bytes | None, int]:
        if self.seccomp_disable:
            return None, 0
        from . import seccomp

        return seccomp.filter_for(
            presets=self.seccomp_presets,
            flags=self.seccomp_flags,
            rules=self.seccomp_rules or None,
            retain_session=self.retain_session,
            disable=False,
        )


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


class Shim:
    """A spawned shim process: its pid, a pidfd on it, and our end of its setup socket.

    The setup fd is one end of a socketpair rather than a pipe, so that it
    also carries the shim's and init's reports back (``init.init.tell``):
    ``started``, ``exited N`` (the program's status, told before init waits
    for orphans) and ``failed N MESSAGE``.  init's stderr may be /dev/null
    or the caller's terminal; the report is how the library learns the
    message for a ``StartError``, and the program's status even when the
    kill timer ends the container during the orphan wait.
    """

    def __init__(
        self, stdin: Stdio = None, stdout: Stdio = None, stderr: Stdio = None, extra: Any = ()
    ) -> None:
        extra_fds = [_fileno(f) for f in extra]
        sources: list[int | None] = [_fileno(stdin), _fileno(stdout), _fileno(stderr)]
        import _socket  # not at module level: the CLI is its own shim and never needs it

        ours, theirs = _socket.socketpair(
            _socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC
        )
        w, r = ours.detach(), theirs.detach()
        staged: list[int] = []
        try:
            sources.append(r)
            sources.extend(extra_fds)
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
            try:
                self.pid = os.posix_spawn(
                    argv[0],
                    argv,
                    {"HAKUREI_SETUP": str(SETUP_FD)},
                    file_actions=actions,
                    setsigmask=(),
                )
            except OSError as e:
                raise StartError("start container init", e) from None
        except BaseException:
            os.close(w)
            raise
        finally:
            for fd in (r, *staged):
                os.close(fd)
        self.setup_w: int | None = w
        #: the same socket, kept after the record is sent to hear the reports
        self.report: int | None = os.dup(w)
        self._heard = b""
        #: init reported that the program runs
        self.started = False
        #: the program's status as init reported it, or None
        self.program_status: int | None = None
        #: (status, message) of a fatal error the shim or init reported
        self.failure: tuple[int, str] | None = None
        self.pidfd = os.pidfd_open(self.pid)
        self.status: int | None = None
        #: warm start: parent fds the shim takes as its stdio and extra files
        self.fetch: list[int] = []
        #: our dups behind ``fetch``, kept open until the shim is reaped
        self.held: list[int] = []
        #: this was the standby: spawn the next one once its record is sent
        self.replenish = False

    @classmethod
    def launch(
        cls, stdin: Stdio = None, stdout: Stdio = None, stderr: Stdio = None, extra: Any = ()
    ) -> Shim:
        """A shim for one container: the warm standby if there is one, else a fresh spawn."""
        shim = _take_standby()
        if shim is None:
            cold = cls(stdin, stdout, stderr, extra)
            cold.replenish = _standby_on  # the standby was missing: start one after this
            return cold
        fetch = []
        try:
            for i, f in enumerate((stdin, stdout, stderr, *extra)):
                fd = _fileno(f)
                if fd is None and i < 3:
                    fetch.append(-1)  # the standby already has /dev/null there
                    continue
                if fd is None:
                    raise StartError("an extra file must be an open fd or file object")
                # Our own close-on-exec dup: the caller may close theirs at once.
                held = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
                shim.held.append(held)
                fetch.append(held)
        except BaseException:
            shim.abandon()
            raise
        shim.fetch = fetch
        return shim

    def record(self, setup: Setup) -> bytes:
        """The framed setup record for this shim (with the fds a warm shim must take)."""
        setup.fetch = list(self.fetch)
        return encode(setup)

    def send(self, setup: Setup) -> None:
        """Blocking write of the setup record; a shim that died early is not an error here."""
        data = self.record(setup)
        w = self.setup_w
        assert w is not None
        self.setup_w = None
        try:
            view = memoryview(data)
            while view:
                n = os.write(w, view)
                view = view[n:]
        except BrokenPipeError:
            pass  # the shim exited; wait() reports why
        finally:
            self.end_setup()
            os.close(w)
            sent(self)

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
        """Take in report lines (see the class docstring); a torn line waits for the rest."""
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
        import select

        fd = self.report
        if fd is None:
            return False
        poller = select.poll()  # not select(): the fd may be above FD_SETSIZE
        poller.register(fd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            return False
        data = os.read(fd, 4096)
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

    def signal(self, sig: int) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def reap(self) -> int:
        """Collect the shim's status (blocking); exit code, or 128+signal."""
        if self.status is None:
            _, st = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(st)
            if self.status < 0:
                self.status = 128 - self.status
            os.close(self.pidfd)
            for fd in self.held:
                os.close(fd)
            self.held = []
            # The shim is gone; init is gone or dying of its pdeathsig, so
            # the end of stream is at most that moment away (bounded anyway).
            while self.listen(1.0):
                pass
            if self.report is not None:
                os.close(self.report)
                self.report = None
            if self.program_status is not None:
                # init saw the program exit: that is the container's status,
                # even if our kill timer then ended the wait for its orphans.
                self.status = self.program_status
        return self.status

    def abandon(self) -> None:
        """Kill and reap after a failure, so nothing outlives the caller's error."""
        if self.setup_w is not None:
            os.close(self.setup_w)
            self.setup_w = None
        self.end_setup()
        self.signal(9)
        self.reap()
        sent(self)


# -- warm starts -------------------------------------------------------------------
#
# A cold start pays for a fresh interpreter and the init path's imports
# (~15 ms of ~24 here, more than bwrap's whole start).  With standby() on, one
# shim is kept spawned and blocked on its setup pipe, already imported; a
# container takes it and a replacement is spawned at once, so that cost moves
# off the critical path.  Its stdio and extra files are unknown when it
# starts, so the setup record lists parent fds for it to take with
# pidfd_getfd (the fd layout it ends up with is the cold one).

_lock = _thread.allocate_lock()
_standby: Shim | None = None
_standby_on = False
_standby_owner = 0
_warm_ok: bool | None = None


def warm_possible() -> bool:
    """Whether a standby shim could take fds from this process (checked once).

    pidfd_getfd needs Linux 5.6 and ptrace access to the parent: Yama's
    ptrace_scope 0 (with 1, a child may not trace its parent) and a dumpable
    parent.
    """
    global _warm_ok
    if _warm_ok is None:
        _warm_ok = _probe_warm()
    return _warm_ok


def _probe_warm() -> bool:
    import _prctl

    from .init.kernel import Kernel

    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            if int(f.read()) != 0:
                return False
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return False
    if _prctl.prctl(3) != 1:  # PR_GET_DUMPABLE
        return False
    pidfd = os.pidfd_open(os.getpid())
    try:
        os.close(Kernel().pidfd_getfd(pidfd, pidfd))
    except OSError:
        return False
    finally:
        os.close(pidfd)
    return True


def standby(enabled: bool = True) -> bool:
    """Keep one shim started ahead for the next container of this process.

    Start latency then drops to the setup work itself (the interpreter start
    and imports happen in the background while the previous container runs).
    The cost is one idle interpreter (~10 MB) as a child of this process,
    which exits by itself when this process does.  Returns whether warm
    starts are in effect: False if disabled or impossible here (see
    ``warm_possible``), in which case every start stays cold.
    """
    global _standby_on, _standby_owner
    with _lock:
        _standby_on = enabled and warm_possible()
        _standby_owner = os.getpid()
        old = _discard_locked() if not _standby_on else None
        if _standby_on and _standby is None:
            _replenish_locked()
        on = _standby_on
    if old is not None:
        old.abandon()
    return on


def _discard_locked() -> Shim | None:
    global _standby
    old, _standby = _standby, None
    return old


def _replenish_locked() -> None:
    global _standby
    try:
        _standby = Shim()
    except StartError:
        _standby = None  # stay cold; the next cold spawn reports the error


def _take_standby() -> Shim | None:
    """The standby shim (replaced by a new one), or None for a cold start."""
    with _lock:
        if not _standby_on:
            return None
        if _standby_owner != os.getpid():  # a forked child: that shim is not ours
            return None
        shim = _discard_locked()
    if shim is not None:
        shim.replenish = True
    if shim is not None and _exited(shim):
        shim.reap()
        sent(shim)
        return None
    return shim


def sent(shim: Shim) -> None:
    """After a standby's record is written: start the next standby.

    Not before: the spawn (~0.5 ms) would sit on this container's critical
    path, and the new interpreter's start-up then overlaps with this
    container's setup instead of preceding it.
    """
    if not shim.replenish:
        return
    shim.replenish = False
    with _lock:
        if _standby_on and _standby is None and _standby_owner == os.getpid():
            _replenish_locked()


def _exited(shim: Shim) -> bool:
    import select

    return bool(select.select([shim.pidfd], [], [], 0)[0])


class Completed:
    """What ``run``/``run_sync`` return: like ``subprocess.CompletedProcess``."""

    def __init__(
        self,
        args: list[str],
        returncode: int,
        stdout: bytes | str | None,
        stderr: bytes | str | None,
    ) -> None:
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"Completed(args={self.args!r}, returncode={self.returncode})"

    def check(self) -> Completed:
        """Raise ``ContainerExitError`` unless the status is 0."""
        if self.returncode:
            raise ContainerExitError(self)
        return self


class ContainerExitError(HakureiError):
    """A container exited non-zero and the caller asked for ``check=True``."""

    def __init__(self, result: Completed) -> None:
        super().__init__(result)
        self.result = result
        self.status = result.returncode

    def __str__(self) -> str:
        raw = self.result.stderr or b""
        text = raw if isinstance(raw, str) else raw.decode(errors="replace")
        err = text.strip().splitlines()
        tail = f": {err[-1]}" if err else ""
        return f"{self.result.args[0]} exited with status {self.result.returncode}{tail}"


def check_run_args(
    fn: str,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    input: bytes | str | None,
    capture_output: bool,
    timeout: float | None,
    text: bool,
) -> bytes | None:
    """``subprocess.run``'s argument rules, naming the function the user called.

    Returns ``input`` as bytes (None if not given).  ``text`` means UTF-8
    with universal newlines, whatever the locale: a container's program gets
    no locale of ours, so ours would be a guess.
    """
    if capture_output and (stdout is not None or stderr is not None):
        raise ValueError(f"{fn}: stdout and stderr arguments may not be used with capture_output")
    if input is not None and stdin is not None:
        raise ValueError(f"{fn}: stdin and input arguments may not both be used")
    if timeout is not None:
        check_wait(f"{fn}: timeout", timeout)
    if input is None:
        return None
    if text and isinstance(input, str):
        return input.encode()
    if not text and isinstance(input, (bytes, bytearray, memoryview)):
        return bytes(input)
    want = "str with text=True" if text else "bytes (str needs text=True)"
    raise TypeError(f"{fn}: input must be {want}, not {type(input).__name__}")


def decoded(data: bytes | None, text: bool) -> bytes | str | None:
    """Captured output as ``subprocess.run`` gives it: bytes, or text with universal newlines."""
    if data is None or not text:
        return data
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


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
    **params: Any,
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
        shim = Shim.launch(stdin, stdout, stderr, extra)
        try:
            shim.send(setup)
            expired = deadline is not None and not _exits_by(shim, deadline)
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


def _exits_by(shim: Shim, deadline: float) -> bool:
    """Whether the shim exits before ``deadline`` (monotonic seconds)."""
    import select

    poller = select.poll()
    poller.register(shim.pidfd, select.POLLIN)
    while True:
        left = deadline - _monotonic()
        if left <= 0:
            return bool(poller.poll(0))
        if poller.poll(left * 1000):
            return True


__all__ = [
    "CANCEL_SIGNAL",
    "EXIT_SETUP",
    "Completed",
    "ContainerExitError",
    "Params",
    "Shim",
    "init_argv",
    "run_sync",
    "standby",
    "warm_possible",
]
