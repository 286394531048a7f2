"""``hakurei exec`` in a terminal, and as an ordinary foreground process without one.

Issue 11 §1.  The terminal cases drive the console script through a real
pseudo-terminal the test holds (the "user's terminal": its slave is the CLI's
stdio and controlling terminal, the test types into and reads from its
master).  Every wait reads until an expected marker or polls /proc for an
expected state, with a deadline.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

from conftest import COUNT_SIGINTS, PY, processes_with

SCRIPT = str(Path(sys.executable).with_name("hakurei"))
DEADLINE = 30.0


def set_size(fd: int, rows: int, cols: int) -> None:
    raw = rows.to_bytes(2, sys.byteorder) + cols.to_bytes(2, sys.byteorder) + bytes(4)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, raw)


def _ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """The user's terminal: a pty whose slave is the CLI's controlling terminal."""

    def __init__(
        self,
        args: list[str],
        rows: int = 24,
        cols: int = 80,
        stdout: int | None = None,
        stderr: int | None = None,
        command: str = "exec",
        caller: list[str] | None = None,
    ) -> None:
        """``stdout``/``stderr``: a file or pipe instead of the terminal (``> log``, ``| less``);
        ``caller``: this command line instead of ``hakurei COMMAND ARGS`` (a library user)."""
        self.master, self.slave = os.openpty()
        set_size(self.master, rows, cols)
        self.before = termios.tcgetattr(self.slave)
        self.p = subprocess.Popen(
            [SCRIPT, command, *args] if caller is None else caller,
            stdin=self.slave,
            stdout=self.slave if stdout is None else stdout,
            stderr=self.slave if stderr is None else stderr,
            start_new_session=True,
            preexec_fn=_ctty,  # the tests are single-threaded
        )
        self.seen = b""
        self.log = b""  # everything, for the messages

    def read(self, timeout: float) -> bytes:
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return b""
        try:
            data = os.read(self.master, 1 << 16)
        except OSError:
            return b""
        self.seen += data
        self.log += data
        return data

    def expect(self, marker: bytes) -> None:
        """Read until ``marker`` appears; what came before it is consumed."""
        deadline = time.monotonic() + DEADLINE
        while marker not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} within {DEADLINE}s; got {self.seen[-2000:]!r}"
            self.read(min(left, 1.0))
        self.seen = self.seen[self.seen.index(marker) + len(marker) :]

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self) -> int:
        """Keep reading (the CLI must never block on output) until it exits."""
        deadline = time.monotonic() + DEADLINE
        while self.p.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.p.kill()
                raise AssertionError(f"hakurei exec still running; got {self.seen[-2000:]!r}")
            self.read(min(left, 0.2))
        while self.read(0):
            pass
        return self.p.returncode

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(DEADLINE)
        os.close(self.master)
        os.close(self.slave)


def wait_for(what: str, check: object) -> object:
    """Poll an observable condition until it holds (bounded)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        got = check()  # type: ignore[operator]
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE}s"
        time.sleep(0.01)


def state(pid: int) -> str:
    """The process's state letter (``T`` stopped, ``S`` sleeping ...), '' once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2]


def one_process(marker: str) -> int:
    pids = wait_for(f"a process with {marker!r}", lambda: processes_with(marker, skip=b"hakurei"))
    assert isinstance(pids, list) and len(pids) == 1, pids
    return int(pids[0])


# -- in a terminal ------------------------------------------------------------------


def test_a_shell_has_job_control_and_ctrl_c_reaches_the_foreground_job() -> None:
    nap = f"{4000 + os.getpid() % 1000}"
    t = Terminal(["--setenv", "PS1", "hk$ ", "--", "/bin/sh", "-i"])
    try:
        t.expect(b"hk$ ")
        assert b"job control turned off" not in t.log
        t.send(f"sleep {nap}\r".encode())
        sleeper = one_process(f"sleep\0{nap}")
        t.send(b"\x1a")  # Ctrl-Z
        wait_for("sleep stopped by Ctrl-Z", lambda: state(sleeper) == "T")
        t.expect(b"hk$ ")
        t.send(b"jobs\r")
        t.expect(b"Stopped")
        t.expect(b"hk$ ")
        t.send(b"fg\r")
        wait_for("sleep continued by fg", lambda: state(sleeper) not in ("T", ""))
        t.send(b"\x03")  # Ctrl-C: the job dies, the shell lives on
        wait_for("sleep ended by Ctrl-C", lambda: state(sleeper) == "")
        t.send(b"echo alive-$((6*7))\r")
        t.expect(b"alive-42")
        t.send(b"exit\r")
        assert t.finish() == 0
    finally:
        t.close()


def test_ctrl_c_runs_the_programs_trap_and_its_status_is_returned() -> None:
    script = 'trap "echo trapped; exit 7" INT; echo armed; while :; do read x; done'
    t = Terminal(["--", "/bin/sh", "-c", script])
    try:
        t.expect(b"armed")
        t.send(b"\x03")
        t.expect(b"trapped")
        assert t.finish() == 7
    finally:
        t.close()


def ctrl_c_arrives_once(t: Terminal) -> None:
    """Type one Ctrl-C at ``COUNT_SIGINTS``: it counts one, and exits with its own 7."""
    try:
        t.expect(b"armed")
        t.send(b"\x03")
        t.expect(b"-times")
        assert t.log.count(b"got-int-1-times") == 1, t.log[-500:]
        assert t.finish() == 7
    finally:
        t.close()


def test_sharing_the_terminal_one_ctrl_c_reaches_the_program_once() -> None:
    """With --retain-session the program is in the terminal's foreground group, as
    CLI and init are: Ctrl-C reaches it from the terminal, and neither passes it on again
    (a REPL would see one KeyboardInterrupt as three)."""
    ctrl_c_arrives_once(Terminal(["--retain-session", "--", PY, "-c", COUNT_SIGINTS]))


def test_hakurei_bwrap_in_a_terminal_one_ctrl_c_reaches_the_program_once() -> None:
    """bubblewrap's default keeps the caller's session: the same rule holds there."""
    fs = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib"]
    fs += ["--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin"]
    argv = [*fs, "--proc", "/proc", "--dev", "/dev", PY, "-c", COUNT_SIGINTS]
    ctrl_c_arrives_once(Terminal(argv, command="bwrap"))


#: A library user in a terminal: one container with ``retain_session``, its status ours.
#: Its own Ctrl-C handler only keeps it alive (an ignored SIGINT would be the program's).
LIBRARY_CALLER = """
import os, signal, sys
from hakurei import prestart, run_sync
from hakurei.profile import default_env, default_ops
signal.signal(signal.SIGINT, lambda *_: None)
prestart()  # else a process's first container starts cold; HAKUREI_FORKSERVER=0 keeps it so
uid, gid = os.getuid(), os.getgid()
ops = default_ops(uid, gid)
r = run_sync(sys.argv[1], sys.argv[1:], ops=ops, env=default_env(), uid=uid, gid=gid,
             stdin=0, stdout=1, stderr=2, retain_session=True)
sys.exit(r.returncode)
"""


def test_a_library_container_sharing_the_terminal_gets_one_ctrl_c_once() -> None:
    """``retain_session`` through the library, the fork server's way and the cold way
    (the suite's second run): the program, its init and the caller's fork server (or
    shim) all get the terminal's Ctrl-C, and only the program acts on it."""
    caller = [sys.executable, "-c", LIBRARY_CALLER, PY, "-c", COUNT_SIGINTS]
    ctrl_c_arrives_once(Terminal([], caller=caller))


def test_the_window_size_of_its_own_terminal_follows_a_resize() -> None:
    # A key pressed right after the resize may reach the program before the
    # CLI has handled its SIGWINCH (as on any terminal), so the program looks
    # again after each Enter until the new size shows, a bounded number of times.
    script = (
        "stty -F /dev/tty size; echo go; "
        'while read x; do s=$(stty -F /dev/tty size); echo "size $s"; '
        '[ "$s" = "40 120" ] && break; done'
    )
    t = Terminal(["--", "/bin/sh", "-c", script], rows=30, cols=100)
    try:
        t.expect(b"30 100")
        t.expect(b"go")
        set_size(t.master, 40, 120)  # the kernel sends SIGWINCH to the CLI
        for _ in range(20):
            t.send(b"\r")
            t.expect(b"size ")
            t.expect(b"\n")
            if b"size 40 120" in t.log:
                break
        assert b"size 40 120" in t.log, t.log[-2000:]
        assert t.finish() == 0
    finally:
        t.close()


def test_the_users_terminal_settings_are_restored_after_stty_minus_echo() -> None:
    t = Terminal(["--", "/bin/sh", "-c", "stty -echo -icanon; echo changed"])
    try:
        t.expect(b"changed")
        assert t.finish() == 0
        assert termios.tcgetattr(t.slave) == t.before
    finally:
        t.close()


def test_the_users_terminal_settings_are_restored_after_sigkill_of_the_program() -> None:
    marker = f"{5000 + os.getpid() % 1000}"
    t = Terminal(["--", "/bin/sh", "-c", f"stty -echo raw; echo changed; exec sleep {marker}"])
    try:
        t.expect(b"changed")
        os.kill(one_process(f"sleep\0{marker}"), signal.SIGKILL)
        assert t.finish() == 128 + signal.SIGKILL
        assert termios.tcgetattr(t.slave) == t.before
    finally:
        t.close()


def test_kill_tstp_gives_the_terminal_back_while_stopped_and_cont_takes_it_again() -> None:
    t = Terminal(["--", "/bin/sh", "-c", "echo armed; read x; echo got-$x"])
    try:
        t.expect(b"armed")
        os.kill(t.p.pid, signal.SIGTSTP)
        wait_for("hakurei exec stopped", lambda: state(t.p.pid) == "T")
        assert termios.tcgetattr(t.slave) == t.before
        os.kill(t.p.pid, signal.SIGCONT)
        wait_for("raw again", lambda: termios.tcgetattr(t.slave) != t.before)
        t.send(b"y\r")
        t.expect(b"got-y")
        assert t.finish() == 0
        assert termios.tcgetattr(t.slave) == t.before
    finally:
        t.close()


TIOCSTI_PROBE = """
import fcntl, os, sys, termios
try:
    for b in b"injected\\n":
        fcntl.ioctl(0, termios.TIOCSTI, bytes([b]))
except OSError as e:
    print("TIOCSTI failed:", e, flush=True)
    sys.exit(1)
print("got", sys.stdin.readline().strip(), flush=True)
"""


def test_tiocsti_without_seccomp_injects_into_its_own_pty_not_the_users_terminal() -> None:
    t = Terminal(["--no-seccomp", "--", "/usr/bin/python3", "-I", "-c", TIOCSTI_PROBE])
    try:
        t.expect(b"got injected")
        assert t.finish() == 0
        # Nothing reached the user's terminal's input queue.
        waiting = fcntl.ioctl(t.slave, termios.FIONREAD, bytes(4))
        assert int.from_bytes(waiting, sys.byteorder) == 0
    finally:
        t.close()


BULK = """
import os, sys
os.write(1, (os.ttyname(1) + " is mine\\n").encode())
line = bytes(range(32, 127)) + b"\\n"
out = sys.stdout.buffer
for i in range(11000):
    out.write(b"%08d " % i + line)
out.write(b"END\\n")
out.flush()
"""


def test_a_megabyte_of_output_arrives_intact_through_its_own_terminal() -> None:
    t = Terminal(["--", "/usr/bin/python3", "-I", "-c", BULK])
    try:
        t.expect(b" is mine\r\n")
        assert t.seen == b"" or t.seen.startswith(b"0")
        assert t.finish() == 0
        line = bytes(range(32, 127)) + b"\r\n"
        expected = b"".join(b"%08d " % i + line for i in range(11000)) + b"END\r\n"
        assert len(expected) > 1 << 20
        assert t.seen == expected
    finally:
        t.close()


# -- in a terminal, with stdout or stderr elsewhere ------------------------------------

PRINTS = 'printf "a\\nb\\r\\n\\001\\n"; tty; echo err >&2'
#: what PRINTS writes to stdout, untouched by any terminal (no ``\n`` -> ``\r\n``)
PRINTED = b"a\nb\r\n\x01\n/dev/pts/0\n"


def test_stdout_to_a_file_from_a_terminal_is_byte_exact_and_the_program_has_a_terminal(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    with log.open("wb") as f:
        t = Terminal(["--", "/bin/sh", "-c", PRINTS], stdout=f.fileno())
    try:
        t.expect(b"err\r\n")  # stderr still on the user's terminal, through the pty
        assert t.finish() == 0
        assert log.read_bytes() == PRINTED
        assert termios.tcgetattr(t.slave) == t.before
    finally:
        t.close()


def test_stdout_to_a_pipe_from_a_terminal_is_byte_exact_and_the_program_has_a_terminal() -> None:
    r, w = os.pipe()
    try:
        t = Terminal(["--", "/bin/sh", "-c", PRINTS], stdout=w)
    finally:
        os.close(w)
    try:
        with os.fdopen(r, "rb") as pipe:
            got = pipe.read()  # until the program and the CLI have both let go of it
        assert got == PRINTED
        assert t.finish() == 0
        assert b"err\r\n" in t.log
    finally:
        t.close()


def test_stderr_to_a_file_from_a_terminal_keeps_stdout_on_the_terminal(tmp_path: Path) -> None:
    err = tmp_path / "err"
    with err.open("wb") as f:
        t = Terminal(["--", "/bin/sh", "-c", "tty; echo err-$((1+1)) >&2"], stderr=f.fileno())
    try:
        t.expect(b"/dev/pts/0\r\n")
        assert t.finish() == 0
        assert err.read_bytes() == b"err-2\n"
    finally:
        t.close()


# -- without a terminal ---------------------------------------------------------------


WAIT_FOR_SIGINT = """
import signal, sys
signal.signal(signal.SIGINT, lambda *a: sys.exit(9))
print("ready", flush=True)
while True:
    signal.pause()
"""


def test_sigint_without_a_terminal_runs_the_programs_handler_and_returns_its_status() -> None:
    p = subprocess.Popen(
        [SCRIPT, "exec", "--", "/usr/bin/python3", "-I", "-c", WAIT_FOR_SIGINT],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGINT)
        assert p.wait(DEADLINE) == 9
    finally:
        p.kill()
        p.wait(DEADLINE)


PING = """
import sys
while sys.stdin.readline():
    print("pong", flush=True)
"""


def test_sigtstp_without_a_terminal_stops_the_container_and_sigcont_resumes_it() -> None:
    marker = f"stop-{uuid.uuid4().hex}"
    p = subprocess.Popen(
        [SCRIPT, "exec", "--", "/usr/bin/python3", "-I", "-c", PING, marker],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(b"ping\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"pong\n"
        program = one_process(marker)
        p.send_signal(signal.SIGTSTP)
        wait_for("the CLI stopped", lambda: state(p.pid) == "T")
        wait_for("the program stopped", lambda: state(program) == "T")
        p.send_signal(signal.SIGCONT)
        wait_for("the CLI resumed", lambda: state(p.pid) not in ("T", ""))
        wait_for("the program resumed", lambda: state(program) not in ("T", ""))
        p.stdin.write(b"ping\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"pong\n"
        p.stdin.close()
        assert p.wait(DEADLINE) == 0
    finally:
        p.kill()
        p.wait(DEADLINE)


def test_tty_names_the_containers_pts_and_init_lines_share_that_terminal() -> None:
    t = Terminal(["-v", "--", "/bin/sh", "-c", "tty"])
    try:
        assert t.finish() == 0
        started = t.log.index(b"init: starting initial program /bin/sh\r\n")
        assert t.log[started:] == (
            b"init: starting initial program /bin/sh\r\n"
            b"/dev/pts/0\r\n"
            b"init: initial process exited with code 0\r\n"
        )
        assert termios.tcgetattr(t.slave) == t.before
    finally:
        t.close()


def test_in_a_terminal_a_container_without_dev_is_refused_in_one_line() -> None:
    ops = ["--ro-bind", "/", "/", "--tmpfs", "/dev"]
    t = Terminal([*ops, "--", "/bin/true"])
    try:
        assert t.finish() == 125
        assert t.log.startswith(b"hakurei: cannot open a terminal in the container (give it")
        assert t.log.count(b"\n") == 1
        assert termios.tcgetattr(t.slave) == t.before
    finally:
        t.close()


def test_pty_with_piped_stdin_ends_the_programs_input_at_its_end() -> None:
    r = subprocess.run(
        [SCRIPT, "exec", "--pty", "--", "/bin/sh", "-c", "cat >/dev/null; echo done-$((1+1))"],
        input=b"a\nb\n",
        capture_output=True,
        timeout=DEADLINE,
    )
    assert (r.returncode, r.stderr) == (0, b"")
    assert r.stdout.endswith(b"done-2\r\n"), r.stdout


def test_pty_with_retain_session_or_no_pty_is_a_usage_error() -> None:
    for other in ("--retain-session", "--no-pty"):
        r = subprocess.run([SCRIPT, "exec", "--pty", other, "--", "/bin/true"], capture_output=True)
        assert r.returncode == 125
        assert r.stderr == b"hakurei: exec: --pty goes with neither --no-pty nor --retain-session\n"
