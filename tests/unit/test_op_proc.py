"""Proc op (reference §7.2)."""

from __future__ import annotations

import errno

import pytest

from hakurei.errors import MountError, OpError
from hakurei.ops import REGISTRY, Ops, Proc, State

from fakekernel import FakeKernel, call


def test_apply_makes_the_mount_point_then_mounts_proc() -> None:
    k = FakeKernel(
        [
            call("makedirs", "/sysroot/proc", 0o750),
            call("mount", "proc", "/sysroot/proc", "proc", 0xE, ""),
        ]
    )
    st = State(k, parent_perm=0o750)
    Proc("/proc").early(st)  # nothing to learn on the host
    Proc("/proc").apply(st)
    k.done()


def test_makedirs_error_stops_before_mount() -> None:
    k = FakeKernel(
        [call("makedirs", "/sysroot/proc", 0o755, err=PermissionError(errno.EPERM, "x"))]
    )
    with pytest.raises(PermissionError):
        Proc("/proc").apply(State(k))
    k.done()


def test_mount_error_message() -> None:
    err = MountError("proc", "/sysroot/proc", "proc", 0xE, "", errno.ENOTRECOVERABLE)
    k = FakeKernel(
        [
            call("makedirs", "/sysroot/proc", 0o755),
            call("mount", "proc", "/sysroot/proc", "proc", 0xE, "", err=err),
        ]
    )
    with pytest.raises(MountError) as info:
        Proc("//proc/").apply(State(k))
    k.done()
    assert str(info.value) == "cannot mount proc on /sysroot/proc: state not recoverable"


def test_validation_equality_text_wire() -> None:
    with pytest.raises(OpError, match=r"^proc: "):
        Proc("proc")
    assert Proc("/proc") == Proc("/proc")
    assert Proc("/proc") != Proc("/proc2")
    assert Ops().proc("/proc") == [Proc("/proc")]
    assert str(Proc("/proc")) == 'proc on "/proc"'
    assert Proc.PREFIX == "mounting"
    op = Proc("/p")
    assert REGISTRY[op.TAG].from_wire(op.to_wire()) == op
