"""The mount helpers of reference §6, replayed on the fake kernel."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

import pytest

from hakurei.errors import MountError, MountinfoError, PathError
from hakurei.init.kernel import (
    AT_RECURSIVE,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
)
from hakurei.ops._mount import bind_mount, ensure_file, mount_tmpfs, remount, tmpfs_options
from hakurei.ops.base import State, parent_perm

from fakekernel import Call, FakeKernel, call

MOUNTINFO = "/host/proc/self/mountinfo"
CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY

# A NixOS-like table as init sees it during apply: the intermediate root, the
# sysroot bind, and a store bound below it.
SAMPLE = b"""\
1 0 0:20 / / rw,nosuid,nodev - tmpfs rootfs rw,uid=1000,gid=100
2 1 0:21 / /sysroot rw,nosuid,nodev - tmpfs rootfs rw
3 2 0:22 / /sysroot/nix rw,relatime shared:1 - ext4 /dev/sda1 rw
4 3 0:22 /nix/store /sysroot/nix/.ro-store ro,nosuid,nodev,relatime - ext4 /dev/sda1 rw
5 3 0:30 / /sysroot/nix/store rw,relatime - overlay overlay rw,lowerdir=/x
6 2 0:31 / /sysroot/my\\040dir rw - tmpfs ephemeral rw
"""


def stat_result(mode: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 0, 0, 0, 0, 0, 0, 0))


DIR = stat_result(0o040755)
FILE = stat_result(0o100644)


def enoent(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "No such file or directory", path)


def eperm() -> PermissionError:
    return PermissionError(errno.EPERM, "Operation not permitted")


def run(
    calls: list[Call], fn: Callable[..., None], *args: object, log: list[str] | None = None
) -> FakeKernel:
    k = FakeKernel(calls)
    fn(State(k, verbose=(log.append if log is not None else None)), *args)
    k.done()
    return k


# -- parent_perm and tmpfs options -----------------------------------------------------


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


def test_mount_tmpfs_makes_parents_from_perm_then_mounts() -> None:
    run(
        [
            call("makedirs", "/sysroot/run/user/65534", 0o700),
            call(
                "mount",
                "ephemeral",
                "/sysroot/run/user/65534",
                "tmpfs",
                MS_NOSUID | MS_NODEV,
                "mode=0700,size=8192",
            ),
        ],
        mount_tmpfs,
        "ephemeral",
        "/sysroot/run/user/65534",
        MS_NOSUID | MS_NODEV,
        8192,
        0o700,
    )


def test_mount_tmpfs_makedirs_error_stops_before_mount() -> None:
    with pytest.raises(PermissionError):
        run(
            [call("makedirs", "/sysroot/tmp", 0o755, err=eperm())],
            mount_tmpfs,
            "ephemeral",
            "/sysroot/tmp",
            0,
            0,
            0o1777,
        )


def test_mount_tmpfs_mount_error_propagates() -> None:
    err = MountError("readonly", "/sysroot/ro", "tmpfs", 7, "mode=0755", errno.EPERM)
    with pytest.raises(MountError) as info:
        run(
            [
                call("makedirs", "/sysroot/ro", 0o755),
                call("mount", "readonly", "/sysroot/ro", "tmpfs", 7, "mode=0755", err=err),
            ],
            mount_tmpfs,
            "readonly",
            "/sysroot/ro",
            7,
            0,
            0o755,
        )
    assert str(info.value) == "cannot mount tmpfs on /sysroot/ro: operation not permitted"


# -- ensure_file ---------------------------------------------------------------------


def test_ensure_file_creates_missing_file_and_parents() -> None:
    run(
        [
            call("stat", "/sysroot/etc/hostname", err=enoent("/sysroot/etc/hostname")),
            call("makedirs", "/sysroot/etc", 0o750),
            call("open", "/sysroot/etc/hostname", CREATE, 0o444, ret=7),
            call("close", 7),
        ],
        ensure_file,
        "/sysroot/etc/hostname",
        0o444,
        0o750,
    )


def test_ensure_file_accepts_existing_non_directory() -> None:
    run([call("stat", "/sysroot/dev/null", ret=FILE)], ensure_file, "/sysroot/dev/null", 0o444, 0)
    char_dev = stat_result(0o020666)
    run([call("stat", "/sysroot/dev/tty", ret=char_dev)], ensure_file, "/sysroot/dev/tty", 0, 0)


def test_ensure_file_rejects_directory() -> None:
    with pytest.raises(PathError) as info:
        run([call("stat", "/sysroot/etc", ret=DIR)], ensure_file, "/sysroot/etc", 0o444, 0o755)
    assert info.value.errno == errno.EISDIR
    assert info.value.op == "ensure"
    assert str(info.value) == "cannot ensure /sysroot/etc: is a directory"


def test_ensure_file_other_stat_error_propagates() -> None:
    with pytest.raises(PermissionError):
        run([call("stat", "/sysroot/x", err=eperm())], ensure_file, "/sysroot/x", 0o444, 0o755)


@pytest.mark.parametrize("step", ["makedirs", "open", "close"])
def test_ensure_file_creation_errors_propagate(step: str) -> None:
    calls = [
        call("stat", "/sysroot/a/b", err=enoent("/sysroot/a/b")),
        call("makedirs", "/sysroot/a", 0o755),
        call("open", "/sysroot/a/b", CREATE, 0o444, ret=3),
        call("close", 3),
    ]
    cut = next(i for i, c in enumerate(calls) if c.name == step)
    calls = calls[: cut + 1]
    calls[cut].err = eperm()
    with pytest.raises(PermissionError):
        run(calls, ensure_file, "/sysroot/a/b", 0o444, 0o755)


# -- bind_mount and remount ----------------------------------------------------------


def test_bind_mount_readonly_binds_then_sets_attributes_on_the_target() -> None:
    """No realpath and no mountinfo: the bind just created the mount at ``target``."""
    log: list[str] = []
    run(
        [
            call("mount", "/host/usr", "/sysroot/usr", "", 0x9000, ""),
            call("mount_setattr", "/sysroot/usr", 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY),
        ],
        bind_mount,
        "/host/usr",
        "/sysroot/usr",
        MS_RDONLY,
        log=log,
    )
    assert log == []


def test_bind_mount_recursive_passes_only_rec_at_bind_time() -> None:
    run(
        [
            call("mount", "/host/nix", "/sysroot/nix", "", 0xD000, ""),
            call(
                "mount_setattr",
                "/sysroot/nix",
                AT_RECURSIVE,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY,
            ),
        ],
        bind_mount,
        "/host/nix",
        "/sysroot/nix",
        MS_REC | MS_RDONLY | MS_NODEV,
    )


def test_bind_mount_without_rec_is_not_recursive_and_only_nosuid_by_default() -> None:
    """Flags other than MS_REC/MS_NODEV/MS_RDONLY reach neither call."""
    run(
        [
            call("mount", "/host/tmp", "/sysroot/tmp", "", 0x9000, ""),
            call("mount_setattr", "/sysroot/tmp", 0, MOUNT_ATTR_NOSUID),
        ],
        bind_mount,
        "/host/tmp",
        "/sysroot/tmp",
        MS_NOEXEC | MS_NOSUID,
    )


def test_bind_mount_target_absent_from_mountinfo_is_still_bound() -> None:
    """Nothing is looked up: a path absent from SAMPLE is bound and gets its attributes."""
    run(
        [
            call("mount", "/host/etc/my dir", "/sysroot/etc/my dir", "", 0x9000, ""),
            call("mount_setattr", "/sysroot/etc/my dir", 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV),
        ],
        bind_mount,
        "/host/etc/my dir",
        "/sysroot/etc/my dir",
        MS_NODEV,
    )


def test_bind_mount_setattr_error_propagates() -> None:
    err = PathError("mount_setattr", "/sysroot/a", errno.EPERM)
    with pytest.raises(PathError) as info:
        run(
            [
                call("mount", "/host/a", "/sysroot/a", "", 0xD000, ""),
                call("mount_setattr", "/sysroot/a", AT_RECURSIVE, MOUNT_ATTR_NOSUID, err=err),
            ],
            bind_mount,
            "/host/a",
            "/sysroot/a",
            MS_REC,
        )
    assert str(info.value) == "cannot mount_setattr /sysroot/a: operation not permitted"


def test_bind_mount_error_skips_setattr() -> None:
    err = MountError("/host/a", "/sysroot/a", "", 0xD000, "", errno.ENOENT)
    with pytest.raises(MountError) as info:
        run(
            [call("mount", "/host/a", "/sysroot/a", "", 0xD000, "", err=err)],
            bind_mount,
            "/host/a",
            "/sysroot/a",
            MS_REC,
        )
    assert str(info.value) == "cannot bind /host/a on /sysroot/a: no such file or directory"


def test_remount_recursive_reaches_submounts_in_one_call() -> None:
    """MS_REMOUNT never recurses; mount_setattr(AT_RECURSIVE) does, for every submount."""
    log: list[str] = []
    run(
        [
            call("realpath", "/sysroot/nix", ret="/sysroot/nix"),
            call("read_file", MOUNTINFO, ret=SAMPLE),
            call(
                "mount_setattr",
                "/sysroot/nix",
                AT_RECURSIVE,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY,
            ),
        ],
        remount,
        "/sysroot/nix",
        MS_REC | MS_RDONLY | MS_NODEV,
        log=log,
    )
    assert log == []


def test_remount_not_recursive_and_only_nosuid_by_default() -> None:
    run(
        [
            call("realpath", "/sysroot", ret="/sysroot"),
            call("read_file", MOUNTINFO, ret=SAMPLE),
            call("mount_setattr", "/sysroot", 0, MOUNT_ATTR_NOSUID),
        ],
        remount,
        "/sysroot",
        0,
    )


def test_remount_ignores_flags_other_than_nodev_and_rdonly() -> None:
    run(
        [
            call("realpath", "/sysroot", ret="/sysroot"),
            call("read_file", MOUNTINFO, ret=SAMPLE),
            call("mount_setattr", "/sysroot", 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV),
        ],
        remount,
        "/sysroot",
        MS_NODEV | MS_NOEXEC | MS_NOSUID,
    )


def test_remount_symlinked_target_says_where_it_resolves() -> None:
    log: list[str] = []
    run(
        [
            call("realpath", "/sysroot/etc/my dir", ret="/sysroot/my dir"),
            call("read_file", MOUNTINFO, ret=SAMPLE),
            call("mount_setattr", "/sysroot/my dir", 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY),
        ],
        remount,
        "/sysroot/etc/my dir",
        MS_RDONLY,
        log=log,
    )
    assert log == ['target resolves to "/sysroot/my dir"']


def test_remount_target_must_be_a_mount_point() -> None:
    with pytest.raises(MountinfoError) as info:
        run(
            [
                call("realpath", "/sysroot/nix/store/x", ret="/sysroot/nix/store/x"),
                call("read_file", MOUNTINFO, ret=SAMPLE),
            ],
            remount,
            "/sysroot/nix/store/x",
            MS_RDONLY,
        )
    assert str(info.value) == (
        'cannot unfold mountinfo: mount point "/sysroot/nix/store/x" never appeared in mountinfo'
    )


def test_remount_plain_prefix_is_not_a_mount_point() -> None:
    """/sysroot/ni is a string prefix of /sysroot/nix but not a mount point."""
    with pytest.raises(MountinfoError):
        run(
            [
                call("realpath", "/sysroot/ni", ret="/sysroot/ni"),
                call("read_file", MOUNTINFO, ret=SAMPLE),
            ],
            remount,
            "/sysroot/ni",
            0,
        )


def test_remount_malformed_mountinfo_is_a_parse_error() -> None:
    bad = SAMPLE + b"7 2 0:32 / /sysroot/x rw tmpfs none rw\n"
    with pytest.raises(MountinfoError) as info:
        run(
            [
                call("realpath", "/sysroot", ret="/sysroot"),
                call("read_file", MOUNTINFO, ret=bad),
            ],
            remount,
            "/sysroot",
            0,
        )
    assert str(info.value) == "cannot parse mountinfo at line 7: unexpected field count"


def test_remount_realpath_error_propagates() -> None:
    with pytest.raises(FileNotFoundError):
        run(
            [call("realpath", "/sysroot/gone", err=enoent("/sysroot/gone"))],
            remount,
            "/sysroot/gone",
            0,
        )


def test_remount_read_mountinfo_error_propagates() -> None:
    with pytest.raises(PermissionError):
        run(
            [
                call("realpath", "/sysroot", ret="/sysroot"),
                call("read_file", MOUNTINFO, err=eperm()),
            ],
            remount,
            "/sysroot",
            0,
        )


def test_remount_setattr_error_propagates() -> None:
    err = PathError("mount_setattr", "/sysroot", errno.EPERM)
    with pytest.raises(PathError) as info:
        run(
            [
                call("realpath", "/sysroot", ret="/sysroot"),
                call("read_file", MOUNTINFO, ret=SAMPLE),
                call("mount_setattr", "/sysroot", AT_RECURSIVE, MOUNT_ATTR_NOSUID, err=err),
            ],
            remount,
            "/sysroot",
            MS_REC,
        )
    assert str(info.value) == "cannot mount_setattr /sysroot: operation not permitted"
