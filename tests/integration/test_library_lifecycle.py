"""Issue 11 §6: the library's lifecycle as a caller sees it, on the real kernel.

Each test is one thing a user of ``run_sync``/``run``/``Container`` observes:
a zero adopt-wait, a program's own status after a forwarded interrupt, a
setup failure as an exception carrying init's message, Ctrl-C as a plain
``KeyboardInterrupt``, ``subprocess.run``'s ``input``/``timeout``/``text``,
and ``wait()`` before ``serve()``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
import trio

import hakurei
from hakurei.errors import StartError
from hakurei.profile import default_env, default_ops
from hakurei.sync import run_sync

from conftest import PY, nothing_left_running, sh


def kwargs() -> dict[str, Any]:
    return {"ops": default_ops(), "env": default_env(), "uid": os.getuid(), "gid": os.getgid()}


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer exists (or is a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


# -- adopt-wait 0 ----------------------------------------------------------------------


def test_adopt_wait_zero_through_the_library_does_not_wait_for_an_orphan() -> None:
    start = time.monotonic()
    r = sh("sleep 100 & exit 3", adopt_wait_delay=0)
    assert r.returncode == 3, r.stderr
    assert time.monotonic() - start < 3.0  # 0 used to mean the 5 s default


def test_adopt_wait_left_out_still_waits_for_an_orphan_by_default() -> None:
    """The default is unchanged: an orphan that finishes within 5 s is waited for."""
    r = sh("(sleep 0.3; echo orphan-done) & exit 3")
    assert (r.returncode, r.stdout) == (3, b"orphan-done\n"), r.stderr


# -- a forwarded interrupt: the program's status, not the kill timer's ------------------


INTERRUPTIBLE = (
    "import os, signal\n"
    "signal.signal(signal.SIGINT, lambda *_: os._exit(9))\n"
    "os.posix_spawn('/bin/sleep', ['sleep', '100'], dict(os.environ))\n"
    "os.write(3, b'r')\n"
    "while True: signal.pause()\n"
)


async def interrupt_when_ready(**params: Any) -> tuple[int, float]:
    """Cancel INTERRUPTIBLE with forward_cancel once it is ready: its status and the time taken."""
    r, w = os.pipe()
    c = hakurei.Container(
        PY, [PY, "-c", INTERRUPTIBLE], extra_files=[w], forward_cancel=True, **params, **kwargs()
    )
    await c.start()
    os.close(w)
    with trio.move_on_after(30) as outer:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.serve)
            await trio.lowlevel.wait_readable(r)
            assert os.read(r, 1) == b"r"
            start = time.monotonic()
            nursery.cancel_scope.cancel()
            await c.wait()
    os.close(r)
    assert not outer.cancelled_caught
    assert c.returncode is not None
    return c.returncode, time.monotonic() - start


async def test_program_exiting_9_on_interrupt_leaving_a_child_returns_9_with_defaults() -> None:
    """Default wait_delay (5 s) and adopt-wait (5 s): the kill timer used to win, giving 137."""
    status, took = await interrupt_when_ready()
    assert status == 9
    assert took < 10


async def test_program_status_survives_the_kill_timer_that_ends_its_orphan_wait() -> None:
    """The kill timer fires during the orphan wait: the orphan dies, the status is still 9."""
    status, took = await interrupt_when_ready(wait_delay=0.3, adopt_wait_delay=60)
    assert status == 9
    assert took < 30


# -- a setup failure is an exception with init's message ---------------------------------


def missing_bind() -> dict[str, Any]:
    kw = kwargs()
    kw["ops"] = kw["ops"].bind("/nonexistent", "/x")
    return kw


def test_setup_failure_through_run_sync_raises_start_error_with_inits_message() -> None:
    with pytest.raises(StartError) as info:
        run_sync("/bin/true", **missing_bind())  # stderr is /dev/null: only the exception tells
    # bubblewrap's words, which its test suite and users grep for
    assert str(info.value) == "Can't find source path /nonexistent: No such file or directory"
    assert info.value.status == 125


def test_setup_failure_with_captured_output_keeps_the_line_in_the_result() -> None:
    with pytest.raises(StartError) as info:
        run_sync("/bin/true", capture_output=True, **missing_bind())
    result = info.value.result
    assert result is not None and result.returncode == 125
    assert result.stderr == f"hakurei: {info.value}\n".encode()


async def test_setup_failure_raises_start_error_from_serve() -> None:
    c = hakurei.Container("/bin/true", **missing_bind())
    await c.start()
    with pytest.raises(StartError, match="/nonexistent"):
        await c.serve()
    assert c.returncode == 125


async def test_setup_failure_raises_start_error_from_trio_run() -> None:
    with pytest.raises(StartError, match="/nonexistent"):
        await hakurei.run("/bin/true", capture_output=True, **missing_bind())


def test_missing_program_is_still_status_127_not_an_exception() -> None:
    """126/127 are the program's statuses (as a shell gives them), not a setup failure."""
    assert run_sync("/nonexistent/program", **kwargs()).returncode == 127


# -- Ctrl-C ---------------------------------------------------------------------------


def test_ctrl_c_during_trio_run_raises_keyboard_interrupt_and_kills_the_container() -> None:
    r, w = os.pipe()

    def interrupt_when_ready() -> None:
        with os.fdopen(r, "rb", buffering=0) as f:
            assert f.read(1) == b"r"
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt_when_ready)
    thread.start()

    async def main_run() -> None:
        await hakurei.run(
            PY,
            [PY, "-c", "import os, signal; os.write(3, b'r'); signal.pause()"],
            extra_files=[w],
            capture_output=True,
            **kwargs(),
        )

    try:
        with pytest.raises(KeyboardInterrupt):
            trio.run(main_run)
    finally:
        os.close(w)
        thread.join(30)
    assert not thread.is_alive()
    nothing_left_running()  # the container was killed and reaped


# -- subprocess.run's input=, timeout=, text= and its conflicts ---------------------------


def test_run_sync_input_reaches_the_programs_stdin() -> None:
    r = run_sync("/bin/cat", ["cat"], input=b"hello\n", capture_output=True, **kwargs())
    assert (r.returncode, r.stdout) == (0, b"hello\n")


def test_run_sync_text_encodes_input_and_decodes_output() -> None:
    r = run_sync("/bin/cat", ["cat"], input="h\u00e9\n", text=True, capture_output=True, **kwargs())
    assert (r.returncode, r.stdout, r.stderr) == (0, "h\u00e9\n", "")


def test_run_sync_timeout_kills_the_container_and_raises_timeout_expired() -> None:
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run_sync(
            "/bin/sh",
            ["sh", "-c", "echo started; exec sleep 100"],
            timeout=0.5,
            capture_output=True,
            **kwargs(),
        )
    assert time.monotonic() - start < 10
    assert info.value.timeout == 0.5
    assert info.value.output == b"started\n"
    nothing_left_running()  # nothing left to reap: the container is gone


async def test_trio_run_input_text_and_timeout() -> None:
    r = await hakurei.run(
        "/bin/cat", ["cat"], input="x\n", text=True, capture_output=True, **kwargs()
    )
    assert (r.returncode, r.stdout) == (0, "x\n")
    with pytest.raises(subprocess.TimeoutExpired):
        await hakurei.run("/bin/sleep", ["sleep", "100"], timeout=0.3, wait_delay=0.3, **kwargs())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"capture_output": True, "stdout": 1},
            "stdout and stderr arguments may not be used with capture_output",
        ),
        (
            {"capture_output": True, "stderr": 2},
            "stdout and stderr arguments may not be used with capture_output",
        ),
        ({"input": b"x", "stdin": 0}, "stdin and input arguments may not both be used"),
    ],
)
def test_run_sync_conflicting_arguments_name_run_sync(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^run_sync\\(\\): {message}"):
        run_sync("/bin/true", **extra, **kwargs())


@pytest.mark.parametrize(
    "extra",
    [{"capture_output": True, "stdout": 1}, {"input": b"x", "stdin": 0}],
)
async def test_trio_run_conflicting_arguments_name_run(extra: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"^run\(\): "):
        await hakurei.run("/bin/true", **extra, **kwargs())


# -- wait() before serve() ---------------------------------------------------------------


async def test_wait_before_serve_raises_instead_of_hanging() -> None:
    c = hakurei.Container("/bin/true", **kwargs())
    await c.start()
    with trio.fail_after(10), pytest.raises(StartError, match=r"wait\(\) before serve\(\)"):
        await c.wait()
    await c.serve()
    assert await c.wait() == 0
    assert c.program_started


# -- a cancel before init exists ---------------------------------------------------------


async def test_a_cancel_that_reaches_the_shim_before_init_exists_is_kept_not_fatal() -> None:
    """The cancel signal (SIGUSR2) may reach a cold shim while it reads its setup or makes
    the namespaces: blocked from its first instruction, it is relayed to init once init
    exists (which then ends the container as a cancel does: status 0), instead of killing
    the shim by its default action (status 140, what the launcher once reported)."""
    c = hakurei.Container("/bin/sleep", ["sleep", "1000"], fork_server=False, **kwargs())
    await c.start()
    assert c.pid is not None
    os.kill(c.pid, signal.SIGUSR2)  # the shim's: it waits for its setup
    await c.serve()
    with trio.fail_after(30):
        assert await c.wait() == 0


@pytest.mark.parametrize("fork_server", [False, True], ids=["cold", "fork-server"])
async def test_a_container_cancelled_before_its_setup_was_sent_ends_without_a_word(
    tmp_path: Any, fork_server: bool
) -> None:
    """Leaving ``async with`` before ``serve()`` cancels a container still waiting for its
    setup: it ends quietly, not with a "truncated setup stream" line on the program's stderr
    (the caller gave up; nothing was malformed)."""
    err = tmp_path / "stderr"
    with open(err, "wb") as f:
        async with hakurei.Container(
            "/bin/true", fork_server=fork_server, stderr=f, **kwargs()
        ) as c:
            pass
    assert (c.returncode, c.program_started) == (128 + signal.SIGUSR2, False)
    assert err.read_bytes() == b""


@pytest.mark.parametrize("fork_server", [False, True], ids=["cold", "fork-server"])
async def test_serve_cancelled_before_the_record_is_written_ends_without_a_word(
    tmp_path: Any, fork_server: bool
) -> None:
    """A serve() whose scope is already cancelled never writes the record: the cancel
    signal goes out before the setup stream ends, so the container ends quietly (the
    launcher's Ctrl-C while it serves the setup printed a truncated-record line)."""
    err = tmp_path / "stderr"
    with open(err, "wb") as f:
        c = hakurei.Container("/bin/true", fork_server=fork_server, stderr=f, **kwargs())
        await c.start()
        with trio.CancelScope() as scope:
            scope.cancel()
            await c.serve()
    assert (c.returncode, c.program_started) == (128 + signal.SIGUSR2, False)
    assert err.read_bytes() == b""


# -- the report channel is optional -------------------------------------------------------


def test_a_shim_driven_by_hand_over_a_pipe_still_runs_and_fails_in_one_line() -> None:
    """docs/protocol.md's way: fd 3 a pipe, closed after the record; nothing is reported back."""
    import sys
    import tempfile

    from hakurei.params import Params
    from hakurei.wire import encode

    def drive(ops: Any) -> tuple[int, bytes, bytes]:
        kw = kwargs()
        kw["ops"] = ops
        setup = Params("/bin/sh", ["sh", "-c", "echo ran"], **kw).resolve(0)
        r, w = os.pipe()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-m", "hakurei", "init"],
                {"HAKUREI_SETUP": "3"},
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                    (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
                    (os.POSIX_SPAWN_DUP2, r, 3),
                ],
            )
            os.close(r)
            os.write(w, encode(setup))  # a small record fits in the pipe
            os.close(w)
            status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            out.seek(0)
            err.seek(0)
            return status, out.read(), err.read()

    ran = drive(default_ops())
    assert ran == (0, b"ran\n", b"")
    status, _, err = drive(default_ops().bind("/nonexistent", "/x"))
    assert status == 125
    assert err.count(b"\n") == 1 and b"/nonexistent" in err
