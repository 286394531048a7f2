"""The ops behind bubblewrap's options (issue 12) on the fake kernel: exact call sequences.

Chmod, File, Lock, Mqueue, and Bind with a ``/proc/self/fd/N`` source.
"""

from __future__ import annotations

import errno
import os

import pytest

from hakurei.errors import OpError, PathError, SourceError
from hakurei.ops import BIND_ENSURE, BIND_OPTIONAL, Bind, Chmod, File, Lock, Mqueue, State
from hakurei.ops.base import HOST, SYSROOT
from hakurei.std import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
)

from fakekernel import Call, FakeKernel, call, oserror

REG = os.stat_result((0o100644, 7, 3, 1, 0, 0, 0, 0, 0, 0))
DIR = os.stat_result((0o040755, 7, 3, 1, 0, 0, 0, 0, 0, 0))
OTHER_DIR = os.stat_result((0o040755, 8, 3, 1, 0, 0, 0, 0, 0, 0))
FIFO = os.stat_result((0o010644, 7, 3, 1, 0, 0, 0, 0, 0, 0))


def run(op: object, calls: list[Call], parent_perm: int = 0o755) -> None:
    k = FakeKernel(calls)
    op.apply(State(k, parent_perm=parent_perm))  # type: ignore[attr-defined]
    k.done()


# -- Chmod ---------------------------------------------------------------------------


def test_chmod_resolves_in_root_and_changes_the_fds_magic_link() -> None:
    run(
        Chmod("/a/./b/", 0o1755),
        [
            call("open_in", SYSROOT, "/a/b", os.O_PATH, ret=5),
            call("chmod", "/host/proc/self/fd/5", 0o1755),
            call("close", 5),
        ],
    )


@pytest.mark.parametrize("failing", ["open_in", "chmod"])
def test_chmod_errors_name_the_mode_and_path(failing: str) -> None:
    calls = [call("open_in", SYSROOT, "/a", os.O_PATH, ret=5)]
    if failing == "open_in":
        calls = [call("open_in", SYSROOT, "/a", os.O_PATH, err=PathError("resolve", "/a", 2))]
    else:
        calls += [call("chmod", "/host/proc/self/fd/5", 0o700, err=oserror(errno.EROFS))]
        calls += [call("close", 5)]
    with pytest.raises(PathError) as info:
        run(Chmod("/a", 0o700), calls)
    want = "no such file or directory" if failing == "open_in" else "read-only file system"
    assert str(info.value) == f"cannot chmod 0700 /a: {want}"


def test_chmod_text_and_range() -> None:
    assert str(Chmod("/x", 0o1755)) == 'mode of "/x" to 01755'
    with pytest.raises(OpError, match=r"^chmod: perm"):
        Chmod("/x", 0o10000)


# -- File ----------------------------------------------------------------------------

FILE_FLAGS = os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


def test_file_is_created_in_its_in_root_parent_with_its_mode_then_written() -> None:
    run(
        File("/t/d/f", b"bytes", 0o640),
        [
            # a 0640 file's missing parents: no access for others
            call("mkdir_in", SYSROOT, "/t/d", 0o750, 0o750, ret=5),
            call("openat", 5, "f", FILE_FLAGS, 0o640, ret=6),
            call("close", 5),
            call("fstat", 6, ret=REG),
            call("write", 6, b"bytes", ret=5),
            call("close", 6),
        ],
    )


def test_file_refuses_what_is_not_a_regular_file_and_closes() -> None:
    with pytest.raises(PathError) as info:
        run(
            File("/f", b"x"),
            [
                call("mkdir_in", SYSROOT, "/", 0o755, 0o755, ret=5),
                call("openat", 5, "f", FILE_FLAGS, 0o666, ret=6),
                call("close", 5),
                call("fstat", 6, ret=FIFO),
                call("close", 6),
            ],
        )
    assert str(info.value) == "cannot create file /f: file exists"


def test_file_link_at_the_name_is_refused() -> None:
    with pytest.raises(PathError) as info:
        run(
            File("/l", b"x"),
            [
                call("mkdir_in", SYSROOT, "/", 0o755, 0o755, ret=5),
                call("openat", 5, "l", FILE_FLAGS, 0o666, err=oserror(errno.ELOOP)),
                call("close", 5),
            ],
        )
    assert str(info.value) == "cannot create file /l: too many levels of symbolic links"


def test_file_of_the_root_itself_is_refused() -> None:
    with pytest.raises(PathError, match="is a directory"):
        run(File("/", b""), [])


# -- Lock ----------------------------------------------------------------------------

LOCK_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY


def test_lock_opens_in_root_takes_a_read_lock_and_keeps_the_fd() -> None:
    op = Lock("/run/lock")
    run(op, [call("open_in", SYSROOT, "/run/lock", LOCK_FLAGS, ret=7), call("lock_shared", 7)])
    assert op.fd == 7  # never closed: init holds it until it exits


def test_lock_that_is_taken_closes_the_fd_and_says_so() -> None:
    op = Lock("/f")
    with pytest.raises(PathError) as info:
        run(
            op,
            [
                call("open_in", SYSROOT, "/f", LOCK_FLAGS, ret=7),
                call("lock_shared", 7, err=oserror(errno.EAGAIN)),
                call("close", 7),
            ],
        )
    assert str(info.value) == "cannot lock /f: resource temporarily unavailable"
    assert op.fd == -1


def test_lock_of_a_missing_file() -> None:
    with pytest.raises(PathError) as info:
        run(
            Lock("/f"),
            [call("open_in", SYSROOT, "/f", LOCK_FLAGS, err=PathError("resolve", "/f", 2))],
        )
    assert str(info.value) == "cannot open lock file /f: no such file or directory"


# -- Mqueue --------------------------------------------------------------------------


def test_mqueue_is_mounted_on_the_in_root_directory_fd() -> None:
    run(
        Mqueue("/dev/mq"),
        [
            call("mkdir_in", SYSROOT, "/dev/mq", 0o755, 0o700, ret=5),
            call("mount_here", 5, "mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, ""),
            call("close", 5),
        ],
        parent_perm=0o700,
    )


# -- Bind of /proc/self/fd/N ---------------------------------------------------------


def test_fd_source_is_checked_early_and_bound_by_the_verified_fd() -> None:
    op = Bind("/proc/self/fd/12", "/b")
    k = FakeKernel([call("fstat", 12, ret=DIR)])
    op.early(State(k))
    k.done()
    run(
        op,
        [
            call("fstat", 12, ret=DIR),
            call("readlink", "/host/proc/self/fd/12", ret="/srv/renamed"),
            call("open_in", HOST, "/srv/renamed", os.O_PATH, ret=20),
            call("fstat", 20, ret=DIR),
            call("fstat", 20, ret=DIR),
            call("mkdir_in", SYSROOT, "/b", 0o755, 0o755, ret=21),
            call("open_tree_fd", 20, True, ret=22),
            call("setattr_fd", 22, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY, True),
            call("move_mount", 22, 21),
            call("close", 22),
            call("close", 21),
            call("close", 20),
        ],
    )


def test_fd_source_whose_name_is_another_inode_binds_nothing() -> None:
    op = Bind("/proc/self/fd/12", "/b")
    op.source_final = op.source
    with pytest.raises(PathError) as info:
        run(
            op,
            [
                call("fstat", 12, ret=DIR),
                call("readlink", "/host/proc/self/fd/12", ret="/srv/x (deleted)"),
                call("open_in", HOST, "/srv/x (deleted)", os.O_PATH, ret=20),
                call("fstat", 20, ret=OTHER_DIR),
                call("close", 20),
            ],
        )
    assert info.value.errno == errno.ESTALE
    assert "(removed, or replaced by another file)" in str(info.value)


def test_fd_source_that_is_a_pipe_is_refused() -> None:
    op = Bind("/proc/self/fd/12", "/b")
    op.source_final = op.source
    with pytest.raises(PathError, match="pipe:"):
        run(
            op,
            [
                call("fstat", 12, ret=FIFO),
                call("readlink", "/host/proc/self/fd/12", ret="pipe:[1234]"),
            ],
        )


def test_closed_fd_source_is_bubblewraps_message_unless_optional() -> None:
    k = FakeKernel([call("fstat", 12, err=oserror(errno.EBADF))])
    with pytest.raises(SourceError) as info:
        Bind("/proc/self/fd/12", "/b").early(State(k))
    assert str(info.value) == "Can't find source path /proc/self/fd/12: Bad file descriptor"
    op = Bind("/proc/self/fd/12", "/b", BIND_OPTIONAL)
    k = FakeKernel([call("fstat", 12, err=oserror(errno.EBADF))])
    op.early(State(k))
    assert op.source_final is None


@pytest.mark.parametrize("source", ["/proc/self/fd/", "/proc/self/fd/1/x", "/proc/self/fd/+1"])
def test_only_a_plain_fd_number_is_an_fd_source(source: str) -> None:
    op = Bind(source, "/b")
    k = FakeKernel([call("realpath", source, ret="/elsewhere")])
    op.early(State(k))
    k.done()


def test_fd_source_cannot_be_ensured() -> None:
    with pytest.raises(OpError, match="cannot ensure"):
        Bind("/proc/self/fd/3", "/b", BIND_ENSURE)
