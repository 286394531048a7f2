"""Init's PID-1 loop on the recording fake kernel: events in, calls out.

``Init.serve`` reaps every process, passes signals on and exits with the
program's status.  Each test is one story told as the exact calls the loop
makes: what ``waitpid`` reaps, which signal ``sigwaitinfo``/``sigtimedwait``
returns, what the clock reads, and the ``kill``, ``close`` and final ``exit``
init answers with.  A missing, extra or reordered call fails the test.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Any

import pytest

from hakurei.init.init import HANDLED, Init
from hakurei.init.kernel import SI_KERNEL
from hakurei.wire import Setup

import records
from fakekernel import Call, Exited, FakeKernel, call, exits

PID = 0x1234
ORPHAN = 0xBABE
#: what the clock reads when the program is reaped (exact in binary, as are the sums below)
T0 = 1000.0
#: ``si_code`` of a kill(2): what the shim's relay, or anyone's kill, gives
SI_USER = 0
LINGER = "hakurei: timeout exceeded waiting for lingering processes\n"


def make_setup(**fields: object) -> Setup:
    return records.make_setup(**fields)


def exited(code: int) -> int:
    return code << 8


def signalled(sig: int) -> int:
    return sig


def reaped(pid: int, status: int) -> Call:
    return call("waitpid", -1, os.WNOHANG, ret=(pid, status))


#: waitpid finds nobody ready: init goes on to wait for a signal
NOTHING = call("waitpid", -1, os.WNOHANG, ret=(0, 0))
#: no process is left in the container
ECHILD = call("waitpid", -1, os.WNOHANG, err=ChildProcessError(errno.ECHILD, "No child processes"))


def arrives(sig: int, code: int = SI_USER) -> Call:
    """``sig`` taken while the program runs (no deadline yet); ``code`` says who sent it."""
    return call("sigwaitinfo", HANDLED, ret=(sig, code))


def clock(t: float) -> Call:
    return call("monotonic", ret=t)


def waits(timeout: float, sig: int | None, code: int = SI_USER) -> Call:
    """The adopt wait: ``sig`` within ``timeout`` seconds, or None when it ran out."""
    return call("sigtimedwait", HANDLED, timeout, ret=None if sig is None else (sig, code))


def kill(pid: int, sig: int, err: OSError | None = None) -> Call:
    return call("kill", pid, sig, err=err)


def serve(setup: Setup, calls: list[Call], extra: list[int] | None = None) -> int:
    """Run the loop on ``calls`` (which end with ``exits``); init's exit status."""
    k = FakeKernel(calls)
    with pytest.raises(Exited) as e:
        Init(k, setup, extra or []).serve(PID)
    k.done()
    return e.value.status


# -- the program's status ---------------------------------------------------------------


def test_the_programs_exit_code_is_the_containers() -> None:
    """Go "strangewait nopriv notty noseccomp yamafault": exit 1 is passed on."""
    calls = [NOTHING, arrives(signal.SIGCHLD), reaped(PID, exited(1)), clock(T0), ECHILD, exits(1)]
    assert serve(make_setup(), calls) == 1


def test_a_program_killed_by_a_signal_gives_128_plus_the_signal() -> None:
    calls = [reaped(PID, signalled(signal.SIGKILL)), clock(T0), ECHILD, exits(137)]
    assert serve(make_setup(), calls) == 137


def test_an_orphans_status_is_not_the_programs() -> None:
    """Go "lowlastcap signaled": an adopted orphan reaped first changes nothing."""
    calls = [
        reaped(ORPHAN, exited(7)),
        reaped(PID, signalled(0x4E)),
        clock(T0),
        ECHILD,
        exits(0xCE),
    ]
    assert serve(make_setup(), calls) == 0xCE


def test_a_strange_status_gives_255_and_the_extra_files_are_closed(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Go "success": neither exited nor signalled → 255; init lets go of the extra files."""
    calls = [
        reaped(PID, 0x137F),
        clock(T0),
        call("close", 10),
        call("close", 11),
        call("close", 12),
        ECHILD,
        exits(0xFF),
    ]
    assert serve(make_setup(files=3, verbose=True), calls, [10, 11, 12]) == 0xFF
    assert capfd.readouterr().err == "init: initial process exited with status 0x137f\n"


def test_no_status_seen_gives_2() -> None:
    assert serve(make_setup(), [ECHILD, exits(2)]) == 2


def test_an_unexpected_wait_error_exits_with_the_status_so_far(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Go "signaled": a wait4 error other than ECHILD is printed, not fatal."""
    enomem = OSError(errno.ENOMEM, "Cannot allocate memory")
    calls = [
        reaped(PID, signalled(0x4E)),
        clock(T0),
        call("waitpid", -1, os.WNOHANG, err=enomem),
        exits(0xCE),
    ]
    assert serve(make_setup(), calls) == 0xCE
    assert capfd.readouterr().err == "hakurei: unexpected wait4 response: cannot allocate memory\n"


class ReportWatch(FakeKernel):
    """Also reads, when the adopt wait starts, what the parent has been told so far."""

    def __init__(self, calls: list[Call], report_r: int) -> None:
        super().__init__(calls)
        self.report_r = report_r
        self.told_before_wait = b""

    def _call(self, name: str, args: tuple[Any, ...]) -> Any:
        if name == "sigtimedwait":
            self.told_before_wait = os.read(self.report_r, 100)
        return super()._call(name, args)


def test_the_parent_hears_the_programs_status_before_the_orphan_wait() -> None:
    """``started``, then ``exited N`` as soon as the program is reaped: a parent whose
    kill timer ends the adopt wait still reports the program's own status."""
    r, w = os.pipe()
    try:
        calls = [reaped(PID, exited(3)), clock(T0), NOTHING, clock(T0 + 1), waits(4.0, None)]
        k = ReportWatch([*calls, exits(3)], r)
        run = Init(k, make_setup(), [])
        run.report = w
        with pytest.raises(Exited):
            run.serve(PID)
        k.done()
        assert k.told_before_wait == b"started\nexited 3\n"
    finally:
        os.close(r)
        os.close(w)


# -- signals while the program runs ------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT])
def test_hangup_terminate_and_quit_reach_the_program_and_its_status_is_returned(sig: int) -> None:
    calls = [
        NOTHING,
        arrives(sig),
        kill(PID, sig),
        NOTHING,
        arrives(signal.SIGCHLD),
        reaped(PID, signalled(sig)),
        clock(T0),
        ECHILD,
        exits(128 + sig),
    ]
    assert serve(make_setup(), calls) == 128 + sig


def test_a_signal_for_a_program_already_gone_is_reported_and_its_status_kept(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Go "lowlastcap signaled cancel passthrough": SIGQUIT goes to the program."""
    calls = [
        NOTHING,
        arrives(signal.SIGQUIT),
        kill(PID, signal.SIGQUIT, ProcessLookupError(errno.ESRCH, "No such process")),
        reaped(PID, signalled(0x4E)),
        clock(T0),
        NOTHING,
        clock(T0 + 1),
        waits(4.0, None),
        exits(206),
    ]
    assert serve(make_setup(verbose=True), calls) == 206
    assert capfd.readouterr().err == (
        "init: got quit, forwarding to initial process\n"
        "hakurei: cannot forward signal: no such process\n"
        "init: initial process exited with signal 78\n" + LINGER
    )


def test_interrupt_reaches_the_programs_group_and_its_status_is_returned(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """SIGINT goes to the program's process group, as a terminal's Ctrl-C (issue 11 §1)."""
    calls = [
        NOTHING,
        arrives(signal.SIGINT),
        kill(-PID, signal.SIGINT),
        NOTHING,
        arrives(signal.SIGCHLD),
        reaped(PID, exited(9)),
        clock(T0),
        ECHILD,
        exits(9),
    ]
    assert serve(make_setup(verbose=True), calls) == 9
    assert capfd.readouterr().err.startswith("init: got interrupt, forwarding to initial process\n")


def test_interrupt_with_retain_session_reaches_the_program_alone() -> None:
    """The program shares init's process group then: only its pid is signalled."""
    calls = [
        NOTHING,
        arrives(signal.SIGINT),
        kill(PID, signal.SIGINT),
        NOTHING,
        arrives(signal.SIGCHLD),
        reaped(PID, signalled(signal.SIGINT)),
        clock(T0),
        ECHILD,
        exits(130),
    ]
    assert serve(make_setup(retain_session=True), calls) == 130


def test_sharing_the_terminal_what_the_terminal_sent_is_not_passed_on() -> None:
    """With retain_session init and the program are in the terminal's foreground group:
    a Ctrl-C or Ctrl-\\ (SI_KERNEL) reached the program itself, and a Ctrl-Z stopped what
    the terminal stops; passing them on would deliver each one twice."""
    calls = [
        NOTHING,
        arrives(signal.SIGINT, SI_KERNEL),
        NOTHING,
        arrives(signal.SIGQUIT, SI_KERNEL),
        NOTHING,
        arrives(signal.SIGTSTP, SI_KERNEL),
        NOTHING,
        arrives(signal.SIGINT),  # kill -INT to the CLI alone, relayed by the shim
        kill(PID, signal.SIGINT),
        NOTHING,
        arrives(signal.SIGCHLD),
        reaped(PID, signalled(signal.SIGINT)),
        clock(T0),
        ECHILD,
        exits(130),
    ]
    assert serve(make_setup(retain_session=True), calls) == 130


def test_in_a_session_of_its_own_the_terminals_signals_are_passed_on() -> None:
    """Without retain_session only the shim's group gets the terminal's Ctrl-C, and the
    shim relays it: init must pass it on whatever its origin (a kernel-sent one too)."""
    calls = [
        NOTHING,
        arrives(signal.SIGINT, SI_KERNEL),
        kill(-PID, signal.SIGINT),
        NOTHING,
        arrives(signal.SIGCHLD),
        reaped(PID, signalled(signal.SIGINT)),
        clock(T0),
        ECHILD,
        exits(130),
    ]
    assert serve(make_setup(), calls) == 130


def test_stop_and_continue_reach_every_process() -> None:
    """SIGTSTP/SIGCONT relayed by the shim: SIGSTOP/SIGCONT to all but PID 1 (kill -1)."""
    calls = [
        NOTHING,
        arrives(signal.SIGTSTP),
        kill(-1, signal.SIGSTOP),
        NOTHING,
        arrives(signal.SIGCONT),
        kill(-1, signal.SIGCONT),
        NOTHING,
        arrives(signal.SIGCHLD),
        reaped(PID, exited(0)),
        clock(T0),
        ECHILD,
        exits(0),
    ]
    assert serve(make_setup(), calls) == 0


# -- the cancel signal (SIGUSR2) ------------------------------------------------------------


def test_cancel_without_forward_cancel_ends_the_container_with_0(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Go exits 0: PID 1 leaving takes the program and everything else down."""
    calls = [NOTHING, arrives(signal.SIGUSR2), exits(0)]
    assert serve(make_setup(verbose=True), calls) == 0
    assert capfd.readouterr().err == "init: got user defined signal 2\n"


def test_forward_cancel_interrupts_the_program_and_its_status_is_the_result(
    capfd: pytest.CaptureFixture[str],
) -> None:
    calls = [
        NOTHING,
        arrives(signal.SIGUSR2),
        kill(PID, signal.SIGINT),
        NOTHING,
        arrives(signal.SIGCHLD),
        reaped(PID, exited(42)),
        clock(T0),
        ECHILD,
        exits(42),
    ]
    assert serve(make_setup(forward_cancel=True, verbose=True), calls) == 42
    assert capfd.readouterr().err.startswith("init: forwarding context cancellation\n")


def test_forward_cancel_to_a_program_already_gone_is_reported_and_its_status_kept(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Go "lowlastcap signaled cancel forward error"."""
    calls = [
        NOTHING,
        arrives(signal.SIGUSR2),
        kill(PID, signal.SIGINT, ProcessLookupError(errno.ESRCH, "No such process")),
        reaped(PID, signalled(0x4E)),
        clock(T0),
        NOTHING,
        clock(T0 + 1),
        waits(4.0, None),
        exits(0xCE),
    ]
    assert serve(make_setup(forward_cancel=True, verbose=True), calls) == 0xCE
    assert capfd.readouterr().err == (
        "init: forwarding context cancellation\n"
        "hakurei: cannot forward cancellation: no such process\n"
        "init: initial process exited with signal 78\n" + LINGER
    )


@pytest.mark.parametrize("forward_cancel", [False, True])
def test_cancel_after_the_program_is_gone_cuts_the_wait_and_keeps_its_status(
    forward_cancel: bool,
) -> None:
    """During the adopt wait a cancel only cuts the wait short; nothing is forwarded."""
    calls = [
        reaped(PID, exited(3)),
        clock(T0),
        NOTHING,
        clock(T0 + 1),
        waits(4.0, signal.SIGUSR2),
        exits(3),
    ]
    assert serve(make_setup(forward_cancel=forward_cancel), calls) == 3


# -- the adopt wait: processes the program left behind -----------------------------------------


def test_processes_left_behind_get_the_adopt_wait_delay_from_the_programs_exit(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The deadline is the program's exit plus ``adopt_wait_delay``; an orphan reaped
    meanwhile does not move it, and when it passes init leaves (killing the rest)."""
    calls = [
        reaped(PID, exited(1)),
        clock(T0),
        NOTHING,
        clock(T0 + 0.5),
        waits(4.5, signal.SIGCHLD),
        reaped(ORPHAN, exited(0)),
        NOTHING,
        clock(T0 + 3.25),
        waits(1.75, None),
        exits(1),
    ]
    assert serve(make_setup(adopt_wait_delay=5.0), calls) == 1
    assert capfd.readouterr().err == LINGER


def test_the_last_orphan_reaped_ends_the_container_early() -> None:
    calls = [
        reaped(PID, exited(1)),
        clock(T0),
        NOTHING,
        clock(T0 + 1),
        waits(4.0, signal.SIGCHLD),
        reaped(ORPHAN, exited(0)),
        ECHILD,
        exits(1),
    ]
    assert serve(make_setup(), calls) == 1


def test_without_an_adopt_wait_init_leaves_with_the_program_and_says_nothing(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """``adopt_wait_delay`` 0 (bwrap's way): no wait at all once the program is gone, and no
    "timeout exceeded" line for a wait nobody asked for."""
    calls = [reaped(PID, exited(9)), clock(T0), NOTHING, clock(T0), exits(9)]
    assert serve(make_setup(adopt_wait_delay=0.0), calls) == 9
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("sig", "name"), [(signal.SIGTERM, "terminated"), (signal.SIGINT, "interrupt")]
)
def test_termination_after_the_program_is_gone_ends_the_wait_with_its_status(
    capfd: pytest.CaptureFixture[str], sig: int, name: str
) -> None:
    """Nothing to forward to: PID 1 leaves with the program's status."""
    calls = [reaped(PID, exited(4)), clock(T0), NOTHING, clock(T0 + 1), waits(4.0, sig), exits(4)]
    assert serve(make_setup(verbose=True), calls) == 4
    assert capfd.readouterr().err == (
        f"init: initial process exited with code 4\ninit: got {name}\n"
    )


# -- program_status, alone ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "result", "line"),
    [
        (exited(0), 0, "code 0"),
        (exited(42), 42, "code 42"),
        (exited(255), 255, "code 255"),
        (signalled(signal.SIGKILL), 137, "signal 9"),
        (signalled(signal.SIGSEGV) | 0x80, 139, "signal 11"),  # core dumped
        (signalled(0x4E), 0xCE, "signal 78"),
        (0x137F, 255, "status 0x137f"),  # stopped by SIGSTOP
        (0xFFFF, 255, "status 0xffff"),  # continued
    ],
)
def test_program_status(
    capfd: pytest.CaptureFixture[str], status: int, result: int, line: str
) -> None:
    assert Init(FakeKernel([]), make_setup(verbose=True), []).program_status(status) == result
    assert capfd.readouterr().err == f"init: initial process exited with {line}\n"
