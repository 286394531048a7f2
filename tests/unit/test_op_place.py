"""Place op (Go TmpfileOp, reference §7.8): temp file, read-only bind, clean-up."""

from __future__ import annotations

import errno
import os

import pytest

from hakurei.errors import MountError, OpError
from hakurei.init.kernel import MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY
from hakurei.ops import REGISTRY, Ops, Place, State

from fakekernel import Call, FakeKernel, call

CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY
DATA = b"test-minimal\n"


def eperm() -> PermissionError:
    return PermissionError(errno.EPERM, "Operation not permitted")


def full_sequence() -> list[Call]:
    return [
        call("open", "/tmp.0", CREATE, 0o600, ret=9),
        call("write", 9, DATA, ret=len(DATA)),
        call("close", 9),
        call(
            "stat",
            "/sysroot/etc/hostname",
            err=FileNotFoundError(errno.ENOENT, "No such file or directory"),
        ),
        call("makedirs", "/sysroot/etc", 0o750),
        call("open", "/sysroot/etc/hostname", CREATE, 0o444, ret=10),
        call("close", 10),
        call("mount", "/tmp.0", "/sysroot/etc/hostname", "", 0x9000, ""),
        call(
            "mount_setattr",
            "/sysroot/etc/hostname",
            0,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY,
        ),
        call("remove", "/tmp.0"),
    ]


def run_apply(calls: list[Call], data: bytes = DATA) -> None:
    k = FakeKernel(calls)
    Place("/etc/hostname", data).apply(State(k, parent_perm=0o750))
    k.done()


def test_success_binds_read_only_and_removes_the_temp_file() -> None:
    run_apply(full_sequence())


def test_short_writes_are_continued() -> None:
    calls = full_sequence()
    calls[1:2] = [call("write", 9, DATA, ret=5), call("write", 9, DATA[5:], ret=len(DATA) - 5)]
    run_apply(calls)


def test_empty_data_writes_nothing() -> None:
    calls = [c for c in full_sequence() if c.name != "write"]
    run_apply(calls, b"")


def test_temp_names_do_not_repeat() -> None:
    k = FakeKernel([call("open", "/tmp.0", CREATE, 0o600, err=eperm())])
    st = State(k)
    with pytest.raises(PermissionError):
        Place("/a", b"").apply(st)
    assert st.tmpname("tmp.") == "/tmp.1"


def test_open_error_leaves_nothing_to_clean() -> None:
    with pytest.raises(PermissionError):
        run_apply([call("open", "/tmp.0", CREATE, 0o600, err=eperm())])


def test_write_error_closes_and_removes() -> None:
    with pytest.raises(OSError) as info:
        run_apply(
            [
                call("open", "/tmp.0", CREATE, 0o600, ret=9),
                call("write", 9, DATA, err=OSError(errno.ENOSPC, "No space left on device")),
                call("close", 9),
                call("remove", "/tmp.0"),
            ]
        )
    assert info.value.errno == errno.ENOSPC


def test_clean_up_errors_do_not_hide_the_cause() -> None:
    with pytest.raises(OSError) as info:
        run_apply(
            [
                call("open", "/tmp.0", CREATE, 0o600, ret=9),
                call("write", 9, DATA, err=OSError(errno.ENOSPC, "No space left on device")),
                call("close", 9, err=OSError(errno.EIO, "I/O error")),
                call("remove", "/tmp.0", err=OSError(errno.EIO, "I/O error")),
            ]
        )
    assert info.value.errno == errno.ENOSPC


@pytest.mark.parametrize(
    "failing",
    [
        2,  # close of the temp file
        3,  # stat of the target
        4,  # makedirs
        5,  # open of the target
        6,  # close of the target
        7,  # the bind
        8,  # mount_setattr on the new bind
    ],
)
def test_later_errors_still_remove_the_temp_file(failing: int) -> None:
    calls = full_sequence()[: failing + 1]
    if calls[-1].name == "mount":
        calls[-1].err = MountError("/tmp.0", "/sysroot/etc/hostname", "", 0x9000, "", errno.EPERM)
    else:
        calls[-1].err = eperm()
    calls.append(call("remove", "/tmp.0"))
    with pytest.raises(OSError):
        run_apply(calls)


def test_final_remove_error_propagates() -> None:
    calls = full_sequence()
    calls[-1].err = eperm()
    with pytest.raises(PermissionError):
        run_apply(calls)


@pytest.mark.parametrize("args", [("etc/hostname", b""), ("/etc/hostname", "text")])
def test_invalid(args: tuple[object, ...]) -> None:
    with pytest.raises(OpError, match=r"^place"):
        Place(*args)  # type: ignore[arg-type]


def test_equality_text_wire() -> None:
    assert Place("/a", b"x") == Place("/a", b"x")
    assert Place("/a", b"x") != Place("/a", b"y")
    assert Ops().place("/a", b"x") == [Place("/a", b"x")]
    assert str(Place("/etc/hostname", DATA)) == 'tmpfile "/etc/hostname" (13 bytes)'
    assert Place.PREFIX == "placing"
    op = Place("/x", b"\x00\xff")
    assert REGISTRY[op.TAG].from_wire(op.to_wire()) == op
