"""Remount op (reference §7.11, with our mount_setattr design of ops/_mount.py)."""

from __future__ import annotations

import errno
import os

import pytest

from hakurei.errors import OpError, PathError, SetupError
from hakurei.ops import REGISTRY, Ops, Remount, State
from hakurei.ops.base import SYSROOT
from hakurei.std import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_NODEV,
    MS_RDONLY,
    MS_REC,
)

from fakekernel import FakeKernel, call


def test_root_read_only_as_the_last_op() -> None:
    k = FakeKernel(
        [
            call("open_in", SYSROOT, "/", os.O_PATH, ret=4),
            call("is_mount_root", 4, ret=True),
            call("setattr_fd", 4, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY, False),
            call("close", 4),
        ]
    )
    Remount("/", MS_RDONLY).apply(State(k))
    k.done()


def test_recursive_nodev() -> None:
    k = FakeKernel(
        [
            call("open_in", SYSROOT, "/", os.O_PATH, ret=4),
            call("is_mount_root", 4, ret=True),
            call("setattr_fd", 4, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, True),
            call("close", 4),
        ]
    )
    Remount("//", MS_REC | MS_NODEV).apply(State(k))
    k.done()


def test_not_a_mount_point() -> None:
    k = FakeKernel(
        [
            call("open_in", SYSROOT, "/usr", os.O_PATH, ret=4),
            call("is_mount_root", 4, ret=False),
            call("close", 4),
        ]
    )
    with pytest.raises(SetupError) as info:
        Remount("/usr/", MS_RDONLY).apply(State(k))
    assert str(info.value) == 'cannot remount "/usr": not a mount point'
    k.done()


def test_missing_target() -> None:
    err = PathError("resolve", "/usr", errno.ENOENT)
    k = FakeKernel([call("open_in", SYSROOT, "/usr", os.O_PATH, err=err)])
    with pytest.raises(PathError) as info:
        Remount("/usr", MS_RDONLY).apply(State(k))
    assert info.value is err
    k.done()


@pytest.mark.parametrize("args", [("usr", 1), ("/usr", -1), ("/usr", "1"), ("/usr/../..", 1)])
def test_invalid(args: tuple[object, ...]) -> None:
    with pytest.raises(OpError, match=r"^remount"):
        Remount(*args)  # type: ignore[arg-type]


def test_equality_text_wire() -> None:
    assert Remount("/", MS_RDONLY) == Remount("/", 1)
    assert Remount("/", MS_RDONLY) != Remount("/", MS_RDONLY | MS_REC)
    assert Remount("//", MS_RDONLY) == Remount("/", MS_RDONLY)
    assert Ops().remount("/", MS_RDONLY) == [Remount("/", MS_RDONLY)]
    assert str(Remount("/", MS_RDONLY)) == '"/" flags 0x1'
    assert str(Remount("/usr", 0x4005)) == '"/usr" flags 0x4005'
    assert str(Remount("/usr/./lib/..", 1)) == '"/usr" flags 0x1'
    assert Remount.PREFIX == "remounting"
    op = Remount("/x", 0x4004)
    assert REGISTRY[op.TAG].from_wire(op.to_wire()) == op
    assert REGISTRY[op.TAG].from_wire({"target": "/x/", "flags": 0x4004}) == op
