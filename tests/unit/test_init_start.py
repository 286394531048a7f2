"""``Init.start()`` on the recording fake kernel (Go ``TestInitEntrypoint`` "start"/"success").

Go's last entry-point steps are: wrap the extra fds, restore the umask,
close the setup pipe, start the program.  Here the umask, the working
directory and the spawn itself go through the kernel seam (the fake checks
their order and arguments); ``os.set_inheritable`` on init's own copies of
the extra fds is recorded apart.  What a real program then sees is proven in
tests/integration/test_program_environment.py.
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
from fakekernel import Call, FakeKernel, call

PID = 0x1234


def spawned(path: str, argv: list[str], env: dict[str, str], **kw: Any) -> Call:
    """The program's spawn; ``kw`` overrides the defaults of a plain start."""
    options = {
        "file_actions": [],
        "setsid": True,
        "setsigmask": (),
        "setsigdef": DEFAULTED,
        "ret": PID,
        **kw,
    }
    return call("posix_spawn", path, argv, env, **options)


TRUE = spawned("/bin/true", ["true"], {})


class Inheritable:
    """Records ``os.set_inheritable`` (init's copies of the extra fds)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def set_inheritable(self, fd: int, inheritable: bool) -> None:
        self.calls.append((fd, inheritable))


@pytest.fixture
def inheritable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inheritable]:
    rec = Inheritable()
    monkeypatch.setattr(os, "set_inheritable", rec.set_inheritable)
    yield rec


def start(setup: Setup, calls: list[Call], extra: list[int], umask: int) -> int:
    k = FakeKernel(calls)
    pid = Init(k, setup, extra).start(umask)
    k.done()
    return pid


def test_success_privileged_with_three_extra_files(inheritable: Inheritable) -> None:
    """Go "success": extra files at 10..12 (setup fd 9) become 3..5; umask 022 restored."""
    setup = records.make_setup(
        path="/bin/zsh",
        args=["zsh", "-c", "exec true", ""],
        env=["HOME=/home/user", "EMPTY=", "PATH=/bin"],
        dir="/home/user",
        privileged=True,
        files=3,
    )
    calls = [
        call("umask", 0o022, ret=0),
        call("chdir", "/home/user"),
        spawned(
            "/bin/zsh",
            ["zsh", "-c", "exec true", ""],
            {"HOME": "/home/user", "EMPTY": "", "PATH": "/bin"},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, 10, 3),
                (os.POSIX_SPAWN_DUP2, 11, 4),
                (os.POSIX_SPAWN_DUP2, 12, 5),
            ],
        ),
    ]
    assert start(setup, calls, [10, 11, 12], 0o022) == PID
    # The originals must not reach the program: only their copies at 3.. do.
    assert inheritable.calls == [(10, False), (11, False), (12, False)]


def test_the_program_gets_default_signals_and_an_empty_mask() -> None:
    """Every signal init handles, and the two Python ignores, are reset at exec."""
    assert set(DEFAULTED) == {*HANDLED, signal.SIGPIPE, signal.SIGXFSZ}
    assert set(HANDLED) >= {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGUSR2}


def test_without_extra_files_no_fd_is_touched(inheritable: Inheritable) -> None:
    calls = [call("umask", 0o077, ret=0), call("chdir", "/"), TRUE]
    start(records.make_setup(), calls, [], 0o077)
    assert inheritable.calls == []


def test_retain_session_keeps_the_session() -> None:
    calls = [
        call("umask", 0o022, ret=0),
        call("chdir", "/"),
        spawned("/bin/true", ["true"], {}, setsid=False),
    ]
    start(records.make_setup(retain_session=True), calls, [], 0o022)


def test_environment_is_exactly_the_records_last_entry_winning() -> None:
    """An empty env stays empty (Go would pass init's own environment: documented
    difference); a repeated name keeps its last value, as Go's exec de-duplicates."""
    calls = [call("umask", 0o022, ret=0), call("chdir", "/"), TRUE]
    start(records.make_setup(env=[]), calls, [], 0o022)
    calls = [
        call("umask", 0o022, ret=0),
        call("chdir", "/"),
        spawned("/bin/true", ["true"], {"A": "2", "B": "x=y"}),
    ]
    start(records.make_setup(env=["A=1", "B=x=y", "A=2"]), calls, [], 0o022)


def test_verbose_names_the_program(capfd: pytest.CaptureFixture[str]) -> None:
    calls = [call("umask", 0o022, ret=0), call("chdir", "/"), TRUE]
    start(records.make_setup(verbose=True), calls, [], 0o022)
    assert capfd.readouterr().err == "init: starting initial program /bin/true\n"


@pytest.mark.parametrize(
    ("err", "status", "message"),
    [
        (errno.ENOENT, EXIT_NOTFOUND, "cannot start /bin/true: no such file or directory"),
        (errno.EACCES, EXIT_NOEXEC, "cannot start /bin/true: permission denied"),
        (errno.ENOEXEC, EXIT_NOEXEC, "cannot start /bin/true: exec format error"),
    ],
)
def test_start_failure_is_one_message_and_its_status(err: int, status: int, message: str) -> None:
    """Go "start": the spawn fails → one fatal line (Go exits 1; here 127/126 like a shell)."""
    failed = spawned("/bin/true", ["true"], {}, err=OSError(err, os.strerror(err), "/bin/true"))
    calls = [call("umask", 0o022, ret=0), call("chdir", "/"), failed]
    with pytest.raises(ProgramError) as e:
        start(records.make_setup(), calls, [], 0o022)
    assert (e.value.status, str(e.value)) == (status, message)


def test_bad_working_directory_fails_before_anything_is_spawned(inheritable: Inheritable) -> None:
    enoent = FileNotFoundError(errno.ENOENT, "No such file or directory", "/nonexistent")
    calls = [call("umask", 0o022, ret=0), call("chdir", "/nonexistent", err=enoent)]
    with pytest.raises(PathError) as e:
        start(records.make_setup(dir="/nonexistent", files=1), calls, [4], 0o022)
    assert str(e.value) == "cannot chdir /nonexistent: no such file or directory"
    assert e.value.status == EXIT_SETUP
    assert inheritable.calls == []
