"""Place op (Go TmpfileOp, reference §7.8): temp file, read-only bind, clean-up."""

from __future__ import annotations

import errno
import os

import pytest

from hakurei.errors import MountError, OpError
from hakurei.ops import REGISTRY, Ops, Place, State
from hakurei.ops.base import SYSROOT
from hakurei.ops.place import MAX_DATA
from hakurei.std import MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY

from fakekernel import Call, FakeKernel, call, failing

CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY
DATA = b"test-minimal\n"


def eperm() -> PermissionError:
    return PermissionError(errno.EPERM, "Operation not permitted")


def full_sequence() -> list[Call]:
    return [
        call("open", "/tmp.0", CREATE, 0o600, ret=9),
        call("write", 9, DATA, ret=len(DATA)),
        call("close", 9),
        # a 0600 file's missing parents: the parent perm without group/other access
        call("file_in", SYSROOT, "/etc/hostname", 0o444, 0o700, ret=10),
        call("open_tree", "/tmp.0", False, ret=11),
        call("setattr_fd", 11, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY, False),
        call("move_mount", 11, 10),
        call("close", 11),
        call("close", 10),
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
    "at",
    [
        2,  # close of the temp file
        3,  # the target, found or made in the container's root
        4,  # open_tree of the temp file
        5,  # setattr_fd on the detached copy
        6,  # move_mount onto the target
        7,  # close of the copy
        8,  # close of the target
    ],
)
def test_later_errors_close_every_fd_and_still_remove_the_temp_file(at: int) -> None:
    err: OSError
    if full_sequence()[at].name == "move_mount":
        err = MountError("/tmp.0", "/etc/hostname", "", 0x1000, "", errno.EPERM)
    else:
        err = eperm()
    calls = [*failing(full_sequence(), at, err), call("remove", "/tmp.0")]
    with pytest.raises(OSError) as info:
        run_apply(calls)
    assert info.value is err


def test_final_remove_error_propagates() -> None:
    calls = full_sequence()
    calls[-1].err = eperm()
    with pytest.raises(PermissionError):
        run_apply(calls)


@pytest.mark.parametrize("args", [("etc/hostname", b""), ("/etc/hostname", "text")])
def test_invalid(args: tuple[object, ...]) -> None:
    with pytest.raises(OpError, match=r"^place"):
        Place(*args)  # type: ignore[arg-type]


def test_data_limit() -> None:
    assert len(Place("/a", bytes(MAX_DATA)).data) == MAX_DATA
    with pytest.raises(OpError) as info:
        Place("/a", bytes(MAX_DATA + 1))
    assert str(info.value) == f"place: {MAX_DATA + 1} bytes exceed the {MAX_DATA}-byte limit"


def test_path_is_normalised() -> None:
    op = Place("/etc/./x/../hostname/", b"h")
    assert op.path == "/etc/hostname"
    assert str(op) == 'tmpfile "/etc/hostname" (1 bytes)'
    wire = {"path": "//etc/hostname", "data": b"h", "perm": 0o600, "writable": False}
    assert Place.from_wire(wire) == op
    with pytest.raises(OpError, match=r"^place: path .* climbs above /$"):
        Place("/etc/../../hostname", b"")


def test_equality_text_wire() -> None:
    assert Place("/a", b"x") == Place("/a", b"x")
    assert Place("/a", b"x") != Place("/a", b"y")
    assert Ops().place("/a", b"x") == [Place("/a", b"x")]
    assert str(Place("/etc/hostname", DATA)) == 'tmpfile "/etc/hostname" (13 bytes)'
    assert Place.PREFIX == "placing"
    op = Place("/x", b"\x00\xff")
    assert REGISTRY[op.TAG].from_wire(op.to_wire()) == op


def test_writable_with_a_mode_binds_without_rdonly_and_creates_with_the_mode() -> None:
    """bubblewrap's --bind-data: a writable private copy; --perms 0640 is its mode."""
    k = FakeKernel(
        [
            call("open", "/tmp.0", CREATE, 0o640, ret=9),
            call("write", 9, DATA, ret=len(DATA)),
            call("close", 9),
            call("file_in", SYSROOT, "/etc/hostname", 0o444, 0o750, ret=10),
            call("open_tree", "/tmp.0", False, ret=11),
            call("setattr_fd", 11, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, False),
            call("move_mount", 11, 10),
            call("close", 11),
            call("close", 10),
            call("remove", "/tmp.0"),
        ]
    )
    op = Place("/etc/hostname", DATA, 0o640, writable=True)
    op.apply(State(k, parent_perm=0o755))
    k.done()
    assert str(op) == 'tmpfile "/etc/hostname" (13 bytes, mode 0640, writable)'
    assert REGISTRY["place"].from_wire(op.to_wire()) == op


@pytest.mark.parametrize("perm", [-1, 0o10000])
def test_mode_out_of_range_is_refused(perm: int) -> None:
    with pytest.raises(OpError, match=r"^place: perm"):
        Place("/a", b"", perm)
