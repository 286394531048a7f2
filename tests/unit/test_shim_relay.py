"""The shim's relay on the recording fake kernel: events in, calls out.

After forking init the shim only waits: ``poll`` says which of the parent's
pidfd, init's pidfd and the signalfd is ready, and the shim passes caught
signals on to init (unless the terminal it shares with the program sent
them), kills init when the parent dies, and exits with init's status when
init exits.  Each test is one such story as the exact calls ``shim.watch``
makes; the real signal plumbing (the signalfd) is proven by the integration
tests (test_lifecycle.py, test_process.py, test_terminal.py).
"""

from __future__ import annotations

import errno
import signal

import pytest

from hakurei.init.shim import watch

from fakekernel import Call, Exited, FakeKernel, RecordingReport, call, exits

PID = 0x1234  # init, as the shim sees it
SHIM = 0x777
PARENT, CHILD, WAKE = 20, 21, 22  # the parent's pidfd, init's pidfd, the signalfd
#: ``si_code``: a kill(2), and a signal the kernel sent (a terminal's Ctrl-C)
SI_USER, SI_KERNEL = 0, 0x80
WATCHED = (PARENT, CHILD, WAKE)


Report = RecordingReport


def ready(*fds: int, watched: tuple[int, ...] = WATCHED) -> Call:
    return call("poll", watched, ret=list(fds))


def caught(*sigs: int, code: int = SI_USER) -> Call:
    """The signalfd's records: each signal the shim caught, in order, and who sent it."""
    return call("read_signals", WAKE, ret=[(sig, code) for sig in sigs])


def kill(pid: int, sig: int, err: OSError | None = None) -> Call:
    return call("kill", pid, sig, err=err)


def init_exits(status: int, watched: tuple[int, ...] = WATCHED) -> list[Call]:
    """Init's pidfd becomes readable; the shim reaps it (wait status ``status``)."""
    return [ready(CHILD, watched=watched), call("waitpid", PID, 0, ret=(PID, status))]


def relay(
    calls: list[Call],
    parent: int | None = PARENT,
    report: Report | None = None,
    shared_terminal: bool = False,
) -> int:
    """Run the relay's loop on ``calls`` (which end with ``exits``); the shim's exit status."""
    k = FakeKernel(calls)
    with pytest.raises(Exited) as e:
        watch(k, PID, parent, CHILD, WAKE, report, shared_terminal=shared_terminal)
    k.done()
    return e.value.status


def test_inits_exit_code_is_the_shims_and_is_reported() -> None:
    report = Report()
    assert relay([*init_exits(42 << 8), exits(42)], report=report) == 42
    assert report.statuses == [42]


def test_init_killed_by_a_signal_gives_128_plus_the_signal() -> None:
    report = Report()
    assert relay([*init_exits(signal.SIGKILL), exits(137)], report=report) == 137
    assert report.statuses == [137]


@pytest.mark.parametrize(
    "sig", [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR2]
)
def test_a_signal_sent_to_the_shim_reaches_init(sig: int) -> None:
    calls = [
        ready(WAKE),
        caught(sig),
        kill(PID, sig),
        *init_exits(sig),
        exits(128 + sig),
    ]
    assert relay(calls) == 128 + sig


def test_signals_caught_together_reach_init_in_order() -> None:
    calls = [
        ready(WAKE),
        caught(signal.SIGHUP, signal.SIGINT, signal.SIGTERM),
        kill(PID, signal.SIGHUP),
        kill(PID, signal.SIGINT),
        kill(PID, signal.SIGTERM),
        *init_exits(0),
        exits(0),
    ]
    assert relay(calls) == 0


def test_a_signal_for_an_init_already_gone_is_dropped_and_its_status_still_returned() -> None:
    gone = ProcessLookupError(errno.ESRCH, "No such process")
    calls = [
        ready(WAKE, CHILD),
        caught(signal.SIGTERM),
        kill(PID, signal.SIGTERM, gone),
        call("waitpid", PID, 0, ret=(PID, 3 << 8)),
        exits(3),
    ]
    assert relay(calls) == 3


def test_stopping_the_shim_stops_the_container_first_then_the_shim() -> None:
    """kill -TSTP on the shim: init stops every process, then the shim stops itself
    (SIGSTOP, which its parent sees); SIGCONT resumes the container."""
    calls = [
        ready(WAKE),
        caught(signal.SIGTSTP),
        kill(PID, signal.SIGTSTP),
        call("getpid", ret=SHIM),
        kill(SHIM, signal.SIGSTOP),
        ready(WAKE),
        caught(signal.SIGCONT),
        kill(PID, signal.SIGCONT),
        *init_exits(0),
        exits(0),
    ]
    assert relay(calls) == 0


def test_the_parents_death_kills_init_and_the_shim_exits_with_its_status() -> None:
    calls = [
        ready(PARENT),
        kill(PID, signal.SIGKILL),
        call("waitpid", PID, 0, ret=(PID, signal.SIGKILL)),
        exits(137),
    ]
    assert relay(calls) == 137


def test_without_a_watched_parent_only_init_and_signals_are_watched() -> None:
    """The CLI is its own shim (parent_pid 0): nobody's death ends the container."""
    watched = (CHILD, WAKE)
    calls = [
        ready(WAKE, watched=watched),
        caught(signal.SIGINT),
        kill(PID, signal.SIGINT),
        *init_exits(130 << 8, watched=watched),
        exits(130),
    ]
    assert relay(calls, parent=None) == 130


def test_sharing_the_terminal_its_own_signals_are_not_passed_on_but_a_kill_is() -> None:
    """retain_session: the program is in the terminal's foreground group and got the
    terminal's Ctrl-C itself; Ctrl-Z still stops the shim (so the shell sees the job
    stop), and a kill sent to the shim alone still reaches init."""
    watched = (CHILD, WAKE)
    calls = [
        ready(WAKE, watched=watched),
        caught(signal.SIGINT, code=SI_KERNEL),
        ready(WAKE, watched=watched),
        caught(signal.SIGTSTP, code=SI_KERNEL),
        call("getpid", ret=SHIM),
        kill(SHIM, signal.SIGSTOP),
        ready(WAKE, watched=watched),
        caught(signal.SIGTERM),
        kill(PID, signal.SIGTERM),
        *init_exits(143 << 8, watched=watched),
        exits(143),
    ]
    assert relay(calls, parent=None, shared_terminal=True) == 143


def test_in_a_session_of_its_own_the_terminals_ctrl_c_is_passed_on() -> None:
    """Without retain_session only the shim's group hears the terminal: it relays."""
    watched = (CHILD, WAKE)
    calls = [
        ready(WAKE, watched=watched),
        caught(signal.SIGINT, code=SI_KERNEL),
        kill(PID, signal.SIGINT),
        *init_exits(130 << 8, watched=watched),
        exits(130),
    ]
    assert relay(calls, parent=None) == 130
