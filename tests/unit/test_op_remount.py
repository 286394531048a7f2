"""Remount op (reference §7.11, with our mount_setattr design of ops/_mount.py)."""

from __future__ import annotations

import pytest

from hakurei.errors import MountinfoError, OpError
from hakurei.init.kernel import (
    AT_RECURSIVE,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_NODEV,
    MS_RDONLY,
    MS_REC,
)
from hakurei.ops import REGISTRY, Ops, Remount, State

from fakekernel import FakeKernel, call

MOUNTINFO = "/host/proc/self/mountinfo"
TABLE = b"1 0 0:1 / / rw - tmpfs rootfs rw\n2 1 0:2 / /sysroot rw,nosuid,nodev - tmpfs rootfs rw\n"


def test_root_read_only_as_the_last_op() -> None:
    k = FakeKernel(
        [
            call("realpath", "/sysroot", ret="/sysroot"),
            call("read_file", MOUNTINFO, ret=TABLE),
            call("mount_setattr", "/sysroot", 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY),
        ]
    )
    Remount("/", MS_RDONLY).apply(State(k))
    k.done()


def test_recursive_nodev() -> None:
    k = FakeKernel(
        [
            call("realpath", "/sysroot", ret="/sysroot"),
            call("read_file", MOUNTINFO, ret=TABLE),
            call("mount_setattr", "/sysroot", AT_RECURSIVE, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV),
        ]
    )
    Remount("//", MS_REC | MS_NODEV).apply(State(k))
    k.done()


def test_not_a_mount_point() -> None:
    k = FakeKernel(
        [
            call("realpath", "/sysroot/usr", ret="/sysroot/usr"),
            call("read_file", MOUNTINFO, ret=TABLE),
        ]
    )
    with pytest.raises(MountinfoError, match="never appeared in mountinfo"):
        Remount("/usr", MS_RDONLY).apply(State(k))
    k.done()


@pytest.mark.parametrize("args", [("usr", 1), ("/usr", -1), ("/usr", "1")])
def test_invalid(args: tuple[object, ...]) -> None:
    with pytest.raises(OpError, match=r"^remount"):
        Remount(*args)  # type: ignore[arg-type]


def test_equality_text_wire() -> None:
    assert Remount("/", MS_RDONLY) == Remount("/", 1)
    assert Remount("/", MS_RDONLY) != Remount("/", MS_RDONLY | MS_REC)
    assert Ops().remount("/", MS_RDONLY) == [Remount("/", MS_RDONLY)]
    assert str(Remount("/", MS_RDONLY)) == '"/" flags 0x1'
    assert str(Remount("/usr", 0x4005)) == '"/usr" flags 0x4005'
    assert Remount.PREFIX == "remounting"
    op = Remount("/x", 0x4004)
    assert REGISTRY[op.TAG].from_wire(op.to_wire()) == op
