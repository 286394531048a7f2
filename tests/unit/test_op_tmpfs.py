"""Tmpfs op (reference §7.5): builders, option strings, size bounds."""

from __future__ import annotations

import errno

import pytest

from hakurei.errors import MountError, OpError, PathError, TmpfsSizeError
from hakurei.ops import REGISTRY, Ops, State, Tmpfs
from hakurei.ops.base import SYSROOT
from hakurei.ops.tmpfs import MAX_SIZE
from hakurei.std import MS_NODEV, MS_NOSUID, MS_RDONLY

from fakekernel import Call, FakeKernel, call


def run_apply(op: Tmpfs, calls: list[Call]) -> None:
    k = FakeKernel(calls)
    op.apply(State(k))
    k.done()


def test_ephemeral_with_size() -> None:
    run_apply(
        Tmpfs("/run/user/1000", 1 << 23, 0o700),
        [
            call("mkdir_in", SYSROOT, "/run/user/1000", 0o700, 0o700, ret=5),
            call(
                "mount_here",
                5,
                "ephemeral",
                "tmpfs",
                MS_NOSUID | MS_NODEV,
                "mode=0700,size=8388608",
            ),
            call("close", 5),
        ],
    )


def test_sticky_tmp_without_size() -> None:
    run_apply(
        Tmpfs("/tmp", 0, 0o1777),
        [
            call("mkdir_in", SYSROOT, "/tmp", 0o755, 0o755, ret=5),
            call("mount_here", 5, "ephemeral", "tmpfs", 0x6, "mode=01777"),
            call("close", 5),
        ],
    )


def test_readonly_builder() -> None:
    (op,) = Ops().readonly("/etc/hakurei/readonly", 0o755)
    assert op == Tmpfs(
        "/etc/hakurei/readonly", 0, 0o755, "readonly", MS_RDONLY | MS_NOSUID | MS_NODEV
    )
    assert isinstance(op, Tmpfs)
    run_apply(
        op,
        [
            call("mkdir_in", SYSROOT, "/etc/hakurei/readonly", 0o755, 0o755, ret=5),
            call("mount_here", 5, "readonly", "tmpfs", 0x7, "mode=0755"),
            call("close", 5),
        ],
    )


def test_errors_propagate_and_close_the_mount_point() -> None:
    perr = PathError("create directory", "/tmp", errno.EPERM)
    with pytest.raises(PathError):
        run_apply(Tmpfs("/tmp"), [call("mkdir_in", SYSROOT, "/tmp", 0o755, 0o755, err=perr)])
    err = MountError("ephemeral", ".", "tmpfs", 6, "mode=0755", errno.ENOMEM)
    with pytest.raises(MountError):
        run_apply(
            Tmpfs("/tmp"),
            [
                call("mkdir_in", SYSROOT, "/tmp", 0o755, 0o755, ret=5),
                call("mount_here", 5, "ephemeral", "tmpfs", 6, "mode=0755", err=err),
                call("close", 5),
            ],
        )


def test_target_is_normalised() -> None:
    op = Tmpfs("/run/./user//1000/")
    assert op.target == "/run/user/1000"
    assert str(op) == 'tmpfs on "/run/user/1000" size 0'
    assert Tmpfs.from_wire({**op.to_wire(), "target": "/run/x/../user/1000"}) == op
    with pytest.raises(OpError, match=r"^tmpfs: path .* climbs above /$"):
        Tmpfs("/run/../../tmp")


@pytest.mark.parametrize("size", [-1, MAX_SIZE + 1])
def test_size_out_of_bounds(size: int) -> None:
    with pytest.raises(TmpfsSizeError) as info:
        Tmpfs("/tmp", size)
    assert str(info.value) == f"tmpfs size {size} out of bounds"
    # apply checks too, for an op that bypassed validation
    op = Tmpfs("/tmp")
    op.size = size
    with pytest.raises(TmpfsSizeError):
        run_apply(op, [])


def test_largest_size_is_accepted() -> None:
    assert Tmpfs("/tmp", MAX_SIZE).size == MAX_SIZE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": "tmp"},
        {"target": "/tmp", "fsname": ""},
        {"target": "/tmp", "perm": -1},
        {"target": "/tmp", "perm": 0o10000},
        {"target": "/tmp", "flags": -1},
        {"target": "/tmp", "size": "1"},
    ],
)
def test_invalid(kwargs: dict[str, object]) -> None:
    with pytest.raises(OpError, match=r"^tmpfs"):
        Tmpfs(**kwargs)  # type: ignore[arg-type]


def test_equality_text_wire() -> None:
    assert Tmpfs("/tmp", 1, 0o700) == Tmpfs("/tmp", 1, 0o700)
    assert Tmpfs("/tmp", 1, 0o700) != Tmpfs("/tmp", 2, 0o700)
    assert Tmpfs("/tmp") != Tmpfs("/tmp", fsname="other")
    assert Ops().tmpfs("/tmp", 1, 0o700) == [Tmpfs("/tmp", 1, 0o700)]
    assert str(Tmpfs("/run/user/65534", 1 << 20)) == 'tmpfs on "/run/user/65534" size 1048576'
    assert Tmpfs.PREFIX == "mounting"
    op = Tmpfs("/x", 5, 0o1777, "readonly", 7)
    assert REGISTRY[op.TAG].from_wire(op.to_wire()) == op
