"""The mount helpers of reference §6, replayed on the fake kernel.

Every destination is an fd from the seam's in-root resolution; these tests
check what is mounted onto it, with which attributes, in which order, and that
every fd a helper opens is closed again, also when a step fails.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

import pytest

from hakurei.errors import MountError, PathError, SetupError
from hakurei.ops._mount import attrs, bind_onto, mount_tmpfs, remount, tmpfs_options
from hakurei.ops.base import SYSROOT, State, parent_perm
from hakurei.std import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
)

from fakekernel import Call, FakeKernel, call, failing


def eperm() -> PermissionError:
    return PermissionError(errno.EPERM, "Operation not permitted")


def run(
    calls: list[Call], fn: Callable[..., None], *args: object, log: list[str] | None = None
) -> FakeKernel:
    k = FakeKernel(calls)
    fn(State(k, verbose=(log.append if log is not None else None)), *args)
    k.done()
    return k


def run_failing(calls: list[Call], fn: Callable[..., None], *args: object) -> BaseException:
    """Run ``fn`` on ``calls`` (which end in a failure and its clean-up); return what it raised."""
    k = FakeKernel(calls)
    with pytest.raises(BaseException) as info:
        fn(State(k), *args)
    k.done()
    return info.value


# -- parent_perm, tmpfs options and attributes ------------------------------------------


@pytest.mark.parametrize(
    ("perm", "want"),
    [
        (0o755, 0o755),
        (0o750, 0o750),
        (0o705, 0o705),
        (0o700, 0o700),
        (0o050, 0o750),
        (0o005, 0o705),
        (0, 0o700),
    ],
)
def test_parent_perm_table(perm: int, want: int) -> None:
    assert parent_perm(perm) == want


@pytest.mark.parametrize(
    ("perm", "size", "want"),
    [
        (0o755, 0, "mode=0755"),
        (0o1777, 0, "mode=01777"),
        (0, 0, "mode=0"),
        (0o700, 1 << 20, "mode=0700,size=1048576"),
        (0o755, -1, "mode=0755"),
    ],
)
def test_tmpfs_option_strings(perm: int, size: int, want: str) -> None:
    assert tmpfs_options(perm, size) == want


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        (0, MOUNT_ATTR_NOSUID),
        (MS_RDONLY, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY),
        (MS_NODEV, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV),
        (MS_REC | MS_RDONLY | MS_NODEV, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY),
        (MS_NOEXEC | MS_NOSUID | MS_REC, MOUNT_ATTR_NOSUID),
    ],
)
def test_attrs_always_nosuid_plus_only_nodev_and_rdonly(flags: int, want: int) -> None:
    assert attrs(flags) == want


# -- mount_tmpfs ---------------------------------------------------------------------


def test_mount_tmpfs_resolves_in_root_with_parent_perm_then_mounts_on_the_fd() -> None:
    run(
        [
            call("mkdir_in", SYSROOT, "/run/user/65534", 0o700, 0o700, ret=5),
            call(
                "mount_here", 5, "ephemeral", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=8192"
            ),
            call("close", 5),
        ],
        mount_tmpfs,
        "ephemeral",
        "/run/user/65534",
        MS_NOSUID | MS_NODEV,
        8192,
        0o700,
    )


def test_mount_tmpfs_sticky_mode_gets_plain_parents() -> None:
    """0o1777 is the tmpfs's mode; the directory under it gets parent_perm(0o1777) = 0755."""
    run(
        [
            call("mkdir_in", SYSROOT, "/tmp", 0o755, 0o755, ret=5),
            call("mount_here", 5, "ephemeral", "tmpfs", 0, "mode=01777"),
            call("close", 5),
        ],
        mount_tmpfs,
        "ephemeral",
        "/tmp",
        0,
        0,
        0o1777,
    )


def test_mount_tmpfs_resolution_error_stops_before_mount() -> None:
    err = PathError("resolve", "/tmp", errno.ENOTDIR)
    with pytest.raises(PathError) as info:
        run(
            [call("mkdir_in", SYSROOT, "/tmp", 0o755, 0o755, err=err)],
            mount_tmpfs,
            "ephemeral",
            "/tmp",
            0,
            0,
            0o1777,
        )
    assert info.value is err
    assert str(err) == "cannot resolve /tmp: not a directory"


def test_mount_tmpfs_mount_error_propagates_and_closes_the_fd() -> None:
    err = MountError("readonly", ".", "tmpfs", 7, "mode=0755", errno.EPERM)
    with pytest.raises(MountError) as info:
        run(
            [
                call("mkdir_in", SYSROOT, "/ro", 0o755, 0o755, ret=5),
                call("mount_here", 5, "readonly", "tmpfs", 7, "mode=0755", err=err),
                call("close", 5),
            ],
            mount_tmpfs,
            "readonly",
            "/ro",
            7,
            0,
            0o755,
        )
    assert info.value is err


# -- bind_onto -----------------------------------------------------------------------


def test_bind_onto_readonly_sets_attributes_on_the_detached_copy_before_attaching() -> None:
    """No mount(2) and no path for the target: a detached tree goes onto exactly fd 5."""
    log: list[str] = []
    run(
        [
            call("open_tree", "/host/usr", False, ret=7),
            call("setattr_fd", 7, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY, False),
            call("move_mount", 7, 5),
            call("close", 7),
        ],
        bind_onto,
        "/host/usr",
        5,
        MS_RDONLY,
        log=log,
    )
    assert log == []


def test_bind_onto_recursive_clones_and_sets_every_submount() -> None:
    run(
        [
            call("open_tree", "/host/nix", True, ret=7),
            call("setattr_fd", 7, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY, True),
            call("move_mount", 7, 5),
            call("close", 7),
        ],
        bind_onto,
        "/host/nix",
        5,
        MS_REC | MS_RDONLY | MS_NODEV,
    )


def test_bind_onto_without_rec_is_not_recursive_and_only_nosuid_by_default() -> None:
    """Flags other than MS_REC/MS_NODEV/MS_RDONLY reach no call."""
    run(
        [
            call("open_tree", "/host/tmp", False, ret=7),
            call("setattr_fd", 7, MOUNT_ATTR_NOSUID, False),
            call("move_mount", 7, 5),
            call("close", 7),
        ],
        bind_onto,
        "/host/tmp",
        5,
        MS_NOEXEC | MS_NOSUID,
    )


def test_bind_onto_source_error_propagates_with_its_message() -> None:
    err = PathError("bind", "/host/a", errno.ENOENT)
    with pytest.raises(PathError) as info:
        run([call("open_tree", "/host/a", True, err=err)], bind_onto, "/host/a", 5, MS_REC)
    assert info.value is err
    assert str(err) == "cannot bind /host/a: no such file or directory"


BIND = [
    call("open_tree", "/host/a", True, ret=7),
    call("setattr_fd", 7, MOUNT_ATTR_NOSUID, True),
    call("move_mount", 7, 5),
    call("close", 7),
]


@pytest.mark.parametrize("at", range(1, len(BIND)))
def test_bind_onto_later_errors_propagate_and_close_the_tree(at: int) -> None:
    """A failed setattr never attaches the copy; the tree fd is closed in every case."""
    err = eperm()
    got = run_failing(failing(BIND, at, err), bind_onto, "/host/a", 5, MS_REC)
    assert got is err


# -- remount -------------------------------------------------------------------------


def remount_calls(path: str, attr: int, recursive: bool) -> list[Call]:
    return [
        call("open_in", SYSROOT, path, os.O_PATH, ret=4),
        call("is_mount_root", 4, ret=True),
        call("setattr_fd", 4, attr, recursive),
        call("close", 4),
    ]


def test_remount_recursive_reaches_submounts_in_one_call() -> None:
    """MS_REMOUNT never recurses; mount_setattr(AT_RECURSIVE) does, for every submount."""
    log: list[str] = []
    run(
        remount_calls("/nix", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY, True),
        remount,
        "/nix",
        MS_REC | MS_RDONLY | MS_NODEV,
        log=log,
    )
    assert log == []


def test_remount_not_recursive_and_only_nosuid_by_default() -> None:
    run(remount_calls("/", MOUNT_ATTR_NOSUID, False), remount, "/", 0)


def test_remount_ignores_flags_other_than_nodev_and_rdonly() -> None:
    run(
        remount_calls("/", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, False),
        remount,
        "/",
        MS_NODEV | MS_NOEXEC | MS_NOSUID,
    )


def test_remount_target_must_be_a_mount_point() -> None:
    """A path inside a mount (or a link to one) is refused, and its fd closed."""
    with pytest.raises(SetupError) as info:
        run(
            [
                call("open_in", SYSROOT, "/nix/store/x", os.O_PATH, ret=4),
                call("is_mount_root", 4, ret=False),
                call("close", 4),
            ],
            remount,
            "/nix/store/x",
            MS_RDONLY,
        )
    assert str(info.value) == 'cannot remount "/nix/store/x": not a mount point'


def test_remount_resolution_error_propagates() -> None:
    err = PathError("resolve", "/gone", errno.ENOENT)
    with pytest.raises(PathError) as info:
        run([call("open_in", SYSROOT, "/gone", os.O_PATH, err=err)], remount, "/gone", 0)
    assert info.value is err
    assert str(err) == "cannot resolve /gone: no such file or directory"


@pytest.mark.parametrize("at", [1, 2, 3])
def test_remount_later_errors_propagate_and_close_the_fd(at: int) -> None:
    """is_mount_root fails on Linux < 5.8 (ENOSYS); setattr may be refused (EPERM)."""
    err = OSError(errno.ENOSYS, "Function not implemented", "statx") if at == 1 else eperm()
    calls = failing(remount_calls("/", MOUNT_ATTR_NOSUID, True), at, err)
    assert run_failing(calls, remount, "/", MS_REC) is err
