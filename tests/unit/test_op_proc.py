"""Proc op (reference §7.2)."""

from __future__ import annotations

import errno

import pytest

from hakurei.errors import MountError, OpError, PathError
from hakurei.ops import REGISTRY, Ops, Proc, State
from hakurei.ops.base import SYSROOT

from fakekernel import FakeKernel, call


def test_apply_resolves_the_mount_point_in_root_then_mounts_proc_on_it() -> None:
    k = FakeKernel(
        [
            call("mkdir_in", SYSROOT, "/proc", 0o750, 0o750, ret=5),
            call("mount_here", 5, "proc", "proc", 0xE, ""),
            call("close", 5),
        ]
    )
    st = State(k, parent_perm=0o750)
    Proc("/proc").early(st)  # nothing to learn on the host
    Proc("/proc").apply(st)
    k.done()


def test_resolution_error_stops_before_mount() -> None:
    err = PathError("resolve", "/proc", errno.ENOTDIR)
    k = FakeKernel([call("mkdir_in", SYSROOT, "/proc", 0o755, 0o755, err=err)])
    with pytest.raises(PathError) as info:
        Proc("/proc").apply(State(k))
    assert info.value is err
    k.done()


def test_mount_error_propagates_and_closes_the_mount_point() -> None:
    err = MountError("proc", ".", "proc", 0xE, "", errno.ENOTRECOVERABLE)
    k = FakeKernel(
        [
            call("mkdir_in", SYSROOT, "/proc", 0o755, 0o755, ret=5),
            call("mount_here", 5, "proc", "proc", 0xE, "", err=err),
            call("close", 5),
        ]
    )
    with pytest.raises(MountError) as info:
        Proc("//proc/").apply(State(k))
    k.done()
    assert info.value is err


def test_target_is_normalised() -> None:
    assert Proc("//proc/").target == "/proc"
    assert str(Proc("/a/../proc/.")) == 'proc on "/proc"'
    assert Proc.from_wire({"target": "/x/../proc"}) == Proc("/proc")
    with pytest.raises(OpError, match=r'^proc: path "/\.\./proc" climbs above /$'):
        Proc("/../proc")


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
