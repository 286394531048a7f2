"""Dev op: the exact /dev build sequence of reference §7.3, and every failure point."""

from __future__ import annotations

import errno
import os

import pytest

from hakurei.errors import MountinfoError, OpError
from hakurei.init.kernel import MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY
from hakurei.ops import Dev, Ops, State

from fakekernel import Call, FakeKernel, call

MOUNTINFO = "/host/proc/self/mountinfo"
CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY


def mountinfo(*targets: str) -> bytes:
    """A well-formed mountinfo listing each target as a mount point."""
    return b"".join(
        b"%d 1 0:%d / %s rw,nosuid - tmpfs tmpfs rw\n" % (20 + i, 20 + i, t.encode())
        for i, t in enumerate(("/", *targets))
    )


def ensure(path: str, pperm: int = 0o755) -> list[Call]:
    """A missing bind target created as an empty 0444 file."""
    return [
        call("stat", path, err=FileNotFoundError(errno.ENOENT, "no such file", path)),
        call("makedirs", os.path.dirname(path), pperm),
        call("open", path, CREATE, 0o444, ret=7),
        call("close", 7),
    ]


def bind(source: str, target: str) -> list[Call]:
    """A non-recursive bind, then nosuid added straight to the new mount (no lookup)."""
    return [
        call("mount", source, target, "", 0x9000, ""),
        call("mount_setattr", target, 0, MOUNT_ATTR_NOSUID),
    ]


def dev_calls(
    t: str = "/sysroot/dev",
    *,
    pperm: int = 0o755,
    session: bool = False,
    tty: bool = False,
    mqueue: bool = False,
    write: bool = False,
) -> list[Call]:
    calls = [
        # parentPerm(pperm) is pperm itself for the 0755 and 0750 used here
        call("makedirs", t, pperm),
        call("mount", "devtmpfs", t, "tmpfs", 0x6, f"mode=0{pperm:o}"),
    ]
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        calls += ensure(f"{t}/{name}", pperm)
        calls += bind(f"/host/dev/{name}", f"{t}/{name}")
    calls += [
        call("symlink", "/proc/self/fd/0", f"{t}/stdin"),
        call("symlink", "/proc/self/fd/1", f"{t}/stdout"),
        call("symlink", "/proc/self/fd/2", f"{t}/stderr"),
        call("symlink", "/proc/self/fd", f"{t}/fd"),
        call("symlink", "/proc/kcore", f"{t}/core"),
        call("symlink", "pts/ptmx", f"{t}/ptmx"),
        call("mkdir", f"{t}/shm", pperm),
        call("mkdir", f"{t}/pts", pperm),
        call("mount", "devpts", f"{t}/pts", "devpts", 0xA, "newinstance,ptmxmode=0666,mode=620"),
    ]
    if session:
        calls.append(call("isatty", 1, ret=tty))
        if tty:
            calls += ensure(f"{t}/console", pperm)
            calls.append(call("readlink", "/host/proc/self/fd/1", ret="/dev/pts/2"))
            calls += bind("/host/dev/pts/2", f"{t}/console")
    if mqueue:
        calls += [
            call("mkdir", f"{t}/mqueue", pperm),
            call("mount", "mqueue", f"{t}/mqueue", "mqueue", 0xE, ""),
        ]
    if not write:
        calls += [
            call("realpath", t, ret=t),
            call("read_file", MOUNTINFO, ret=mountinfo(f"{t}/null", t)),
            call("mount_setattr", t, 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY),
            call("makedirs", f"{t}/shm", 0o755),
            call("mount", "tmpfs", f"{t}/shm", "tmpfs", 0x6, "mode=01777"),
        ]
    return calls


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


def test_writable_dev_has_no_remount_and_no_shm_tmpfs() -> None:
    run(Dev("/dev", write=True), dev_calls(write=True))
    run(Dev("/dev", True, True), dev_calls(mqueue=True, write=True))


def test_parent_perm_is_the_tmpfs_mode_and_the_parents_mode() -> None:
    run(Dev("/x/dev"), dev_calls("/sysroot/x/dev", pperm=0o750), parent_perm=0o750)


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
    # isatty cannot fail; every other call can.
    return [i for i, c in enumerate(calls) if c.name != "isatty"]


@pytest.mark.parametrize("fail_at", _failure_points())
def test_every_failure_stops_the_build(fail_at: int) -> None:
    calls = dev_calls(session=True, tty=True, mqueue=True)
    err = PermissionError(errno.EACCES, "permission denied")
    c = calls[fail_at]
    calls[fail_at] = call(c.name, *c.args, err=err)
    k = FakeKernel(calls[: fail_at + 1])
    with pytest.raises(PermissionError) as e:
        Dev("/dev", mqueue=True).apply(State(k, retain_session=True))
    assert e.value is err
    k.done()


def test_readonly_remount_needs_dev_in_mountinfo() -> None:
    calls = dev_calls()
    i = next(i for i, c in enumerate(calls) if c.args == ("/sysroot/dev",) and c.name == "realpath")
    calls[i + 1] = call("read_file", MOUNTINFO, ret=mountinfo("/sysroot/dev/null"))
    k = FakeKernel(calls[: i + 2])
    with pytest.raises(MountinfoError) as e:
        Dev("/dev").apply(State(k))
    assert str(e.value) == (
        'cannot unfold mountinfo: mount point "/sysroot/dev" never appeared in mountinfo'
    )
    k.done()


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
