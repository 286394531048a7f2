"""The record's bwrap process fields, the capability table, and "did the program start".

The shim validates every field of a record before touching anything; the
relay reports an exit code to the CLI's ``--json-status-fd`` only when init
said, on its started pipe, that the program ran (``s``; ``sf`` is a PID 1
whose exec failed).
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from hakurei import capnames
from hakurei.errors import ParamsError, SetupError
from hakurei.init.init import Init
from hakurei.init.shim import watch
from hakurei.ops import Ops
from hakurei.params import Params
from hakurei.wire import BPF_MAXINSNS, decode, encode

import records
from fakekernel import Exited, FakeKernel, RecordingReport, call, exits

ALLOW = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # ret SECCOMP_RET_ALLOW


def test_process_fields_travel_and_come_back() -> None:
    setup = records.make_setup(
        caps=1 << 21 | 1 << 40,
        as_pid_1=True,
        seccomp_programs=[ALLOW, ALLOW * 2],
        disable_userns=True,
        assert_userns_disabled=True,
        sync_fd=5,
        block_fd=6,
        parent_pid=0,
    )
    back = decode(encode(setup))
    for name in ("caps", "as_pid_1", "seccomp_programs", "disable_userns", "sync_fd", "block_fd"):
        assert getattr(back, name) == getattr(setup, name)
    assert back.userns_block_fd == -1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"caps": 1 << 64}, "bad capability mask"),
        ({"caps": -1}, "bad capability mask"),
        ({"seccomp_programs": [ALLOW[:7]]}, "not a non-zero multiple of 8"),
        ({"seccomp_programs": [b""]}, "not a non-zero multiple of 8"),
        ({"seccomp_programs": [ALLOW * (BPF_MAXINSNS + 1)]}, "exceeds 4096"),
        ({"seccomp_programs": ["text"]}, "must be a list of bytes"),
        ({"seccomp_programs": [ALLOW] * 65}, "more than 64 seccomp programs"),
        ({"sync_fd": 5}, "sync_fd needs the calling process to be the shim"),
        ({"block_fd": -2, "parent_pid": 0}, "bad block_fd"),
        ({"sync_fd": 5, "block_fd": 5, "parent_pid": 0}, "given for another use"),
        (
            {"userns_block_fd": 5, "disable_userns": True, "parent_pid": 0},
            "cannot be combined",
        ),
        ({"as_pid_1": 1}, "as_pid_1 must be a boolean"),
        ({"userns_fd": 5}, "userns_fd needs the calling process to be the shim"),
        ({"userns_fd": 5, "disable_userns": True, "parent_pid": 0}, "cannot be combined"),
        ({"pidns_fd": 5}, "pidns_fd needs the calling process to be the shim"),
        ({"userns2_fd": 5}, "userns2_fd needs the calling process to be the shim"),
        ({"userns_fd": 5, "userns_block_fd": 6, "parent_pid": 0}, "cannot be combined"),
    ],
)
def test_bad_process_fields_are_one_setup_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SetupError, match=message):
        records.make_setup(**fields)


def test_the_library_refuses_fds_of_its_own_process() -> None:
    p = Params("/bin/true", ops=[], sync_fd=7)
    p.ops = list(Ops().proc("/proc"))
    with pytest.raises(ParamsError, match="sync_fd is an fd of the calling process"):
        p.resolve(0)
    assert p.resolve(0, watch_parent=False).sync_fd == 7


def test_params_checks_the_seccomp_programs_and_caps() -> None:
    with pytest.raises(ParamsError, match="multiple of 8"):
        Params("/bin/true", seccomp_programs=[b"123"])
    with pytest.raises(ParamsError, match="capability bit mask"):
        Params("/bin/true", caps=1 << 64)


@pytest.mark.parametrize(
    ("name", "bits"),
    [
        ("CAP_SYS_ADMIN", 1 << 21),
        ("cap_sys_admin", 1 << 21),
        ("sys_admin", 1 << 21),
        ("CAP_CHECKPOINT_RESTORE", 1 << 40),
        ("0", 1),
        ("all", (1 << 64) - 1),
        ("ALL", (1 << 64) - 1),
    ],
)
def test_capability_names(name: str, bits: int) -> None:
    assert capnames.mask(name) == bits


@pytest.mark.parametrize("name", ["CAP_NOPE", "64", "", "9" * 5000, "CAP_", "٣"])
def test_unknown_capability_names_are_params_errors(name: str) -> None:
    with pytest.raises(ParamsError, match="unknown capability"):
        capnames.mask(name)


def test_capability_table_names_are_numbered_as_the_kernel_does() -> None:
    assert capnames.NUMBERS["CAP_CHOWN"] == 0
    assert capnames.NUMBERS["CAP_SETPCAP"] == 8
    assert capnames.NUMBERS["CAP_SYSLOG"] == 34
    assert capnames.name(21) == "CAP_SYS_ADMIN"


# -- the relay: an exit code only for a program that started ------------------------

PID, PARENT, CHILD, WAKE, STARTED = 0x1234, 20, 21, 22, 23
WATCHED = (PARENT, CHILD, WAKE, STARTED)


Report = RecordingReport


def relay(calls: list[Any]) -> list[int]:
    report = Report()
    k = FakeKernel(calls)
    with pytest.raises(Exited):
        watch(k, PID, PARENT, CHILD, WAKE, report, STARTED)
    k.done()
    return report.statuses


def test_a_program_that_started_has_its_exit_reported() -> None:
    calls = [
        call("poll", WATCHED, ret=[STARTED]),
        call("read", STARTED, 16, ret=b"s"),
        call("poll", WATCHED, ret=[STARTED]),
        call("read", STARTED, 16, ret=b""),
        call("poll", (PARENT, CHILD, WAKE), ret=[CHILD]),
        call("waitpid", PID, 0, ret=(PID, 42 << 8)),
        exits(42),
    ]
    assert relay(calls) == [42]


def test_started_written_just_before_init_exited_is_still_read() -> None:
    calls = [
        call("poll", WATCHED, ret=[CHILD, STARTED]),
        call("waitpid", PID, 0, ret=(PID, 7 << 8)),
        call("read", STARTED, 16, ret=b"s"),
        call("read", STARTED, 16, ret=b""),
        exits(7),
    ]
    assert relay(calls) == [7]


def test_init_that_never_started_the_program_has_no_exit_reported() -> None:
    calls = [
        call("poll", WATCHED, ret=[STARTED, CHILD]),
        call("read", STARTED, 16, ret=b""),
        call("waitpid", PID, 0, ret=(PID, 127 << 8)),
        exits(127),
    ]
    assert relay(calls) == []


class Bwrap(Report):
    """hakurei bwrap's way: a program that never ran makes the exit status 1."""

    def exit_status(self, status: int, ran: bool) -> int:
        super().exit_status(status, ran)
        return status if ran else 1


def test_the_report_chooses_the_shims_exit_status_knowing_whether_the_program_ran() -> None:
    never = [
        call("poll", WATCHED, ret=[STARTED, CHILD]),
        call("read", STARTED, 16, ret=b""),
        call("waitpid", PID, 0, ret=(PID, 125 << 8)),
        exits(1),
    ]
    ran = [
        call("poll", WATCHED, ret=[STARTED, CHILD]),
        call("read", STARTED, 16, ret=b"s"),
        call("waitpid", PID, 0, ret=(PID, 125 << 8)),
        call("read", STARTED, 16, ret=b""),
        exits(125),
    ]
    for calls, seen in ((never, [False]), (ran, [True])):
        report = Bwrap()
        k = FakeKernel(calls)
        with pytest.raises(Exited):
            watch(k, PID, PARENT, CHILD, WAKE, report, STARTED)
        k.done()
        assert report.ran == seen


def test_a_pid_1_whose_exec_failed_has_no_exit_reported() -> None:
    calls = [
        call("poll", WATCHED, ret=[STARTED]),
        call("read", STARTED, 16, ret=b"sf"),
        call("poll", WATCHED, ret=[CHILD]),
        call("waitpid", PID, 0, ret=(PID, 127 << 8)),
        call("read", STARTED, 16, ret=b""),
        exits(127),
    ]
    assert relay(calls) == []


def test_a_signal_still_reaches_init_while_the_started_pipe_is_watched() -> None:
    calls = [
        call("poll", WATCHED, ret=[WAKE]),
        call("read_signals", WAKE, ret=[(signal.SIGTERM, 0)]),
        call("kill", PID, signal.SIGTERM),
        call("poll", WATCHED, ret=[CHILD]),
        call("waitpid", PID, 0, ret=(PID, signal.SIGTERM)),
        call("read", STARTED, 16, err=BlockingIOError()),
        exits(128 + signal.SIGTERM),
    ]
    assert relay(calls) == []


# -- init: kept caps, the block fd and the raw programs, as the exact calls ----------


def test_kept_caps_stay_in_every_set_and_init_loads_only_our_filter() -> None:
    keep = 1 << 10 | 1 << 40 | 1 << 63  # 63: above cap_last_cap, so not kept
    setup = records.make_setup(
        caps=keep, bpf=ALLOW, seccomp_programs=[ALLOW * 2, ALLOW * 3], block_fd=9, parent_pid=0
    )
    kept = 1 << 10 | 1 << 40
    full = (1 << 41) - 1
    calls = [
        call("ambient_clear_all"),
        *(call("capbset_drop", cap) for cap in range(41) if cap not in (10, 40)),
        call("capset", full, full, kept),
        call("ambient_raise", 10),
        call("ambient_raise", 40),
        call("capset", 0, kept, kept),
        call("set_no_new_privs"),
        call("landlock_abi", ret=6),
        call("landlock_scope", 3),
        call("read", 9, 1, ret=b""),  # the caller closed it: EOF lets the program go too
        call("close", 9),
        call("seccomp_load", ALLOW),  # the caller's programs are the program's (forkexec)
    ]
    k = FakeKernel(calls)
    Init(k, setup, []).privileges(40)
    k.done()


def test_init_lets_go_of_its_caps_once_the_program_runs() -> None:
    k = FakeKernel([call("capset", 0, 0, 0)])
    Init(k, records.make_setup(caps=1 << 10), []).let_go()
    k.done()
    k = FakeKernel([])
    Init(k, records.make_setup(), []).let_go()  # nothing kept: nothing to drop
    k.done()
