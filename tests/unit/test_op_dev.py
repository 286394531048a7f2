"""Dev op: the exact /dev build sequence of reference §7.3, and every failure point."""

from __future__ import annotations

import errno
import os

import pytest

from hakurei.errors import OpError
from hakurei.ops import Dev, Ops, State
from hakurei.ops.base import SYSROOT
from hakurei.std import MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY

from fakekernel import Call, FakeKernel, call, failing

CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY
NODE = os.O_PATH | os.O_NOFOLLOW
SUBDIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW
WHERE, DEV = 3, 4  # the mount point in the container's root, and the new tmpfs


class Fds:
    """Hands out fd numbers the way the kernel would not bother to: never reused."""

    def __init__(self) -> None:
        self.n = 10

    def __call__(self) -> int:
        self.n += 1
        return self.n


def node(fds: Fds, name: str, source: str) -> list[Call]:
    """An empty 0444 file made in the new tmpfs, and the host node bound onto it (nosuid)."""
    made, target, tree = fds(), fds(), fds()
    return [
        call("openat", DEV, name, CREATE, 0o444, ret=made),
        call("close", made),
        call("openat", DEV, name, NODE, ret=target),
        call("open_tree", source, False, ret=tree),
        call("setattr_fd", tree, MOUNT_ATTR_NOSUID, False),
        call("move_mount", tree, target),
        call("close", tree),
        call("close", target),
    ]


def mount_in(fds: Fds, name: str, fstype: str, flags: int, data: str) -> list[Call]:
    """A new filesystem on the directory ``name`` of the tmpfs, reached by its fd."""
    fd = fds()
    return [
        call("openat", DEV, name, SUBDIR, ret=fd),
        call("mount_here", fd, fstype, fstype, flags, data),
        call("close", fd),
    ]


def dev_calls(
    target: str = "/dev",
    *,
    pperm: int = 0o755,
    session: bool = False,
    tty: bool = False,
    mqueue: bool = False,
    write: bool = False,
) -> list[Call]:
    fds = Fds()
    calls = [
        call("mkdir_in", SYSROOT, target, pperm, pperm, ret=WHERE),
        call(
            "fsmount",
            "tmpfs",
            "devtmpfs",
            {"mode": f"0{pperm:o}"},
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            ret=DEV,
        ),
        call("move_mount", DEV, WHERE),
    ]
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        calls += node(fds, name, f"/host/dev/{name}")
    calls += [
        call("symlinkat", "/proc/self/fd/0", DEV, "stdin"),
        call("symlinkat", "/proc/self/fd/1", DEV, "stdout"),
        call("symlinkat", "/proc/self/fd/2", DEV, "stderr"),
        call("symlinkat", "/proc/self/fd", DEV, "fd"),
        call("symlinkat", "/proc/kcore", DEV, "core"),
        call("symlinkat", "pts/ptmx", DEV, "ptmx"),
        call("mkdirat", DEV, "shm", pperm),
        call("mkdirat", DEV, "pts", pperm),
        *mount_in(fds, "pts", "devpts", 0xA, "newinstance,ptmxmode=0666,mode=620"),
    ]
    if session:
        calls.append(call("isatty", 1, ret=tty))
        if tty:
            calls.append(call("readlink", "/host/proc/self/fd/1", ret="/dev/pts/2"))
            calls += node(fds, "console", "/host/dev/pts/2")
    if mqueue:
        calls += [
            call("mkdirat", DEV, "mqueue", pperm),
            *mount_in(fds, "mqueue", "mqueue", 0xE, ""),
        ]
    if not write:
        calls += [
            # the tmpfs itself, not recursive: the nodes, devpts and mqueue keep theirs
            call("setattr_fd", DEV, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY, False),
            *mount_in(fds, "shm", "tmpfs", 0x6, "mode=01777"),
        ]
    return [*calls, call("close", DEV), call("close", WHERE)]


def run(op: Dev, calls: list[Call], **state: bool | int) -> None:
    k = FakeKernel(calls)
    st = State(k, **state)  # type: ignore[arg-type]
    op.early(st)
    op.apply(st)
    k.done()


def test_readonly_dev_with_mqueue() -> None:
    run(Dev("/dev", mqueue=True), dev_calls(mqueue=True))


def test_readonly_dev_without_mqueue() -> None:
    run(Dev("/dev"), dev_calls())


def test_writable_dev_has_no_readonly_attribute_and_no_shm_tmpfs() -> None:
    run(Dev("/dev", write=True), dev_calls(write=True))
    run(Dev("/dev", True, True), dev_calls(mqueue=True, write=True))


def test_parent_perm_is_the_tmpfs_mode_and_the_parents_mode() -> None:
    run(Dev("/x/dev"), dev_calls("/x/dev", pperm=0o750), parent_perm=0o750)


def test_target_is_resolved_in_root_as_normalised() -> None:
    op = Dev("/x/../run//dev/")
    assert op.target == "/run/dev"
    assert str(op) == 'dev on "/run/dev"'
    run(op, dev_calls("/run/dev"))


def test_retained_session_without_a_tty_has_no_console() -> None:
    run(Dev("/dev"), dev_calls(session=True, tty=False), retain_session=True)


def test_retained_session_on_a_tty_gets_that_tty_as_console() -> None:
    run(
        Dev("/dev", mqueue=True),
        dev_calls(session=True, tty=True, mqueue=True),
        retain_session=True,
    )


def test_a_tty_is_not_looked_at_without_a_retained_session() -> None:
    # The fake fails on any isatty call: none may happen.
    run(Dev("/dev"), dev_calls(session=False))


def _failure_points() -> list[int]:
    calls = dev_calls(session=True, tty=True, mqueue=True)
    # isatty cannot fail; every other call can, the closes included.
    return [i for i, c in enumerate(calls) if c.name != "isatty"]


@pytest.mark.parametrize("fail_at", _failure_points())
def test_every_failure_stops_the_build_and_closes_every_fd(fail_at: int) -> None:
    err = PermissionError(errno.EACCES, "permission denied")
    k = FakeKernel(failing(dev_calls(session=True, tty=True, mqueue=True), fail_at, err))
    with pytest.raises(PermissionError) as e:
        Dev("/dev", mqueue=True).apply(State(k, retain_session=True))
    assert e.value is err
    k.done()


def test_destination_above_the_root_is_refused() -> None:
    with pytest.raises(OpError, match=r'^dev: path "/dev/../../x" climbs above /$'):
        Dev("/dev/../../x")


def test_validation() -> None:
    Dev("/dev")
    with pytest.raises(OpError):
        Dev("dev")
    with pytest.raises(OpError):
        Dev("/dev", 1)  # type: ignore[arg-type]
    with pytest.raises(OpError):
        Dev("/dev", False, None)  # type: ignore[arg-type]
    with pytest.raises(OpError):
        Dev.from_wire({"target": "/dev", "mqueue": False})
    assert Dev.from_wire({"target": "/dev", "mqueue": True, "write": False}) == Dev("/dev", True)


def test_builders_and_equality() -> None:
    assert Ops().dev("/dev") == [Dev("/dev", False, False)]
    assert Ops().dev("/dev", mqueue=True) == [Dev("/dev", True, False)]
    assert Ops().dev_writable("/dev", True) == [Dev("/dev", True, True)]
    assert Dev("/dev") != Dev("/dev", write=True)
    assert Dev("/dev") != Dev("/dev", mqueue=True)
    assert Dev("/dev") != Dev("/x")


def test_text() -> None:
    assert Dev.PREFIX == "mounting"
    assert str(Dev("/dev")) == 'dev on "/dev"'
    assert str(Dev("/dev", mqueue=True)) == 'dev on "/dev" with mqueue'
    assert str(Dev("/dev", True, True)) == 'dev on "/dev" with mqueue'
