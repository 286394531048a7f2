"""``Init.start()`` on the recording fake kernel (Go ``TestInitEntrypoint`` "start"/"success").

Go's last entry-point steps are: wrap the extra fds, restore the umask,
close the setup pipe, start the program.  Here the umask and the working
directory go through the kernel seam (the fake checks their order and
arguments); the spawn itself is ``os.posix_spawn``, replaced by a recorder
that also checks every kernel call happened before it.  What a real program
then sees is proven in tests/integration/test_program_environment.py.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from hakurei.errors import EXIT_NOEXEC, EXIT_NOTFOUND, EXIT_SETUP, PathError, ProgramError
from hakurei.init.init import DEFAULTED, HANDLED, Init
from hakurei.wire import Setup

import records
from fakekernel import FakeKernel, call

PID = 0x1234


class Spawner:
    """Records ``os.posix_spawn`` and ``os.set_inheritable``; returns PID or raises ``err``."""

    def __init__(self, k: FakeKernel) -> None:
        self.k = k
        self.spawned: list[tuple[str, list[str], dict[str, str], dict[str, Any]]] = []
        self.inheritable: list[tuple[int, bool]] = []
        self.err: OSError | None = None

    def posix_spawn(self, path: str, argv: list[str], env: dict[str, str], **kw: Any) -> int:
        self.k.done()  # umask and chdir are done before the program exists
        self.spawned.append((path, list(argv), dict(env), kw))
        if self.err is not None:
            raise self.err
        return PID

    def set_inheritable(self, fd: int, inheritable: bool) -> None:
        self.inheritable.append((fd, inheritable))


@pytest.fixture
def spawner(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spawner]:
    s = Spawner(FakeKernel([]))
    monkeypatch.setattr(os, "posix_spawn", s.posix_spawn)
    monkeypatch.setattr(os, "set_inheritable", s.set_inheritable)
    yield s


def start(spawner: Spawner, setup: Setup, calls: list[Any], extra: list[int], umask: int) -> int:
    spawner.k = FakeKernel(calls)
    pid = Init(spawner.k, setup, extra).start(umask)
    spawner.k.done()
    return pid


def test_success_privileged_with_three_extra_files(spawner: Spawner) -> None:
    """Go "success": extra files at 10..12 (setup fd 9) become 3..5; umask 022 restored."""
    setup = records.make_setup(
        path="/bin/zsh",
        args=["zsh", "-c", "exec true", ""],
        env=["HOME=/home/user", "EMPTY=", "PATH=/bin"],
        dir="/home/user",
        privileged=True,
        files=3,
    )
    calls = [call("umask", 0o022, ret=0), call("chdir", "/home/user")]
    assert start(spawner, setup, calls, [10, 11, 12], 0o022) == PID
    # The originals must not reach the program: only their copies at 3.. do.
    assert spawner.inheritable == [(10, False), (11, False), (12, False)]
    ((path, argv, env, kw),) = spawner.spawned
    assert (path, argv) == ("/bin/zsh", ["zsh", "-c", "exec true", ""])
    assert env == {"HOME": "/home/user", "EMPTY": "", "PATH": "/bin"}
    assert kw == {
        "file_actions": [
            (os.POSIX_SPAWN_DUP2, 10, 3),
            (os.POSIX_SPAWN_DUP2, 11, 4),
            (os.POSIX_SPAWN_DUP2, 12, 5),
        ],
        "setsid": True,
        "setsigmask": (),
        "setsigdef": DEFAULTED,
    }


def test_the_program_gets_default_signals_and_an_empty_mask() -> None:
    """Every signal init handles, and the two Python ignores, are reset at exec."""
    assert set(DEFAULTED) == {*HANDLED, signal.SIGPIPE, signal.SIGXFSZ}
    assert set(HANDLED) >= {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGUSR2}


def test_without_extra_files_no_fd_is_touched(spawner: Spawner) -> None:
    calls = [call("umask", 0o077, ret=0), call("chdir", "/")]
    start(spawner, records.make_setup(), calls, [], 0o077)
    assert spawner.inheritable == []
    assert spawner.spawned[0][3]["file_actions"] == []


def test_retain_session_keeps_the_session(spawner: Spawner) -> None:
    calls = [call("umask", 0o022, ret=0), call("chdir", "/")]
    start(spawner, records.make_setup(retain_session=True), calls, [], 0o022)
    assert spawner.spawned[0][3]["setsid"] is False


def test_environment_is_exactly_the_records_last_entry_winning(spawner: Spawner) -> None:
    """An empty env stays empty (Go would pass init's own environment: documented
    difference); a repeated name keeps its last value, as Go's exec de-duplicates."""
    calls = [call("umask", 0o022, ret=0), call("chdir", "/")]
    start(spawner, records.make_setup(env=[]), calls, [], 0o022)
    assert spawner.spawned[-1][2] == {}
    calls = [call("umask", 0o022, ret=0), call("chdir", "/")]
    start(spawner, records.make_setup(env=["A=1", "B=x=y", "A=2"]), calls, [], 0o022)
    assert spawner.spawned[-1][2] == {"A": "2", "B": "x=y"}


def test_verbose_names_the_program(spawner: Spawner, capfd: pytest.CaptureFixture[str]) -> None:
    calls = [call("umask", 0o022, ret=0), call("chdir", "/")]
    start(spawner, records.make_setup(verbose=True), calls, [], 0o022)
    assert capfd.readouterr().err == "init: starting initial program /bin/true\n"


@pytest.mark.parametrize(
    ("err", "status", "message"),
    [
        (errno.ENOENT, EXIT_NOTFOUND, "cannot start /bin/true: no such file or directory"),
        (errno.EACCES, EXIT_NOEXEC, "cannot start /bin/true: permission denied"),
        (errno.ENOEXEC, EXIT_NOEXEC, "cannot start /bin/true: exec format error"),
    ],
)
def test_start_failure_is_one_message_and_its_status(
    spawner: Spawner, err: int, status: int, message: str
) -> None:
    """Go "start": the spawn fails → one fatal line (Go exits 1; here 127/126 like a shell)."""
    spawner.err = OSError(err, os.strerror(err), "/bin/true")
    calls = [call("umask", 0o022, ret=0), call("chdir", "/")]
    with pytest.raises(ProgramError) as e:
        start(spawner, records.make_setup(), calls, [], 0o022)
    assert (e.value.status, str(e.value)) == (status, message)


def test_bad_working_directory_fails_before_anything_is_spawned(spawner: Spawner) -> None:
    enoent = FileNotFoundError(errno.ENOENT, "No such file or directory", "/nonexistent")
    calls = [call("umask", 0o022, ret=0), call("chdir", "/nonexistent", err=enoent)]
    with pytest.raises(PathError) as e:
        start(spawner, records.make_setup(dir="/nonexistent", files=1), calls, [4], 0o022)
    assert str(e.value) == "cannot chdir /nonexistent: no such file or directory"
    assert e.value.status == EXIT_SETUP
    assert spawner.spawned == [] and spawner.inheritable == []
