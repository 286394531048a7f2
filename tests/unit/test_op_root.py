"""AutoRoot op: the host's top level becomes binds, minus what the container provides."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from hakurei.errors import OpError, OpRepeatError, PathError, SourceError
from hakurei.ops import (
    BIND_DEVICE,
    BIND_ENSURE,
    BIND_OPTIONAL,
    BIND_WRITABLE,
    AutoRoot,
    Link,
    Ops,
    State,
)
from hakurei.ops.base import SYSROOT
from hakurei.ops.root import is_auto_root_bindable
from hakurei.std import MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY

from fakekernel import Call, FakeKernel, call

DIR = os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, 0, 0, 0))
LNK = os.stat_result((stat.S_IFLNK | 0o777, 0, 0, 0, 0, 0, 0, 0, 0, 0))
ROOT = ["bin", "dev", "etc", "home", "lib64", "mnt", "nix", "proc", "root", "sys", "tmp", "usr"]
BOUND = ["bin", "home", "lib64", "nix", "root", "sys", "usr"]
READONLY = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY


def entry(host: str, final: str | None = None) -> list[Call]:
    """early for a top-level entry that is not a link: lstat, then Bind's realpath."""
    return [call("lstat", host, ret=DIR), call("realpath", host, ret=final or host)]


def bind_dir(
    source: str, target: str, attrs: int, fd: int = 5, tree: int = 6, pperm: int = 0o755
) -> list[Call]:
    """The apply calls of a recursive Bind whose (resolved) source is a directory."""
    return [
        call("stat", source, ret=DIR),
        call("mkdir_in", SYSROOT, target, 0o755, pperm, ret=fd),
        call("open_tree", source, True, ret=tree),
        call("setattr_fd", tree, attrs, True),
        call("move_mount", tree, fd),
        call("close", tree),
        call("close", fd),
    ]


def test_binds_every_bindable_entry_read_only() -> None:
    early = [call("listdir", "/", ret=ROOT)]
    for n in BOUND:
        early += entry(f"/{n}", "/usr/bin" if n == "bin" else None)
    apply: list[Call] = []
    for n in BOUND:
        source = "/host/usr/bin" if n == "bin" else f"/host/{n}"
        apply += bind_dir(source, f"/{n}", READONLY)
    k = FakeKernel(early + apply)
    msgs: list[str] = []
    st = State(k, verbose=msgs.append)
    op = AutoRoot("/", 0)
    op.early(st)
    assert k.pos == len(early), "early must only list and resolve"
    op.apply(st)
    k.done()
    assert msgs[0] == 'mounting "/host/usr/bin" on "/bin" flags 0x4005'
    assert msgs[1] == 'mounting "/home" flags 0x4005'


def test_a_top_level_link_is_recreated_as_the_same_link_never_followed_on_the_host() -> None:
    """An image's ``hostroot -> /`` and ``bin -> usr/bin`` mean paths in the container.

    Nothing at the link's host target is resolved, stat'ed or bound: the only
    host access is lstat and readlink of the entry itself, and apply makes the
    link inside the container's root.
    """
    early = [
        call("listdir", "/img", ret=["bin", "hostroot", "private", "usr"]),
        call("lstat", "/img/bin", ret=LNK),
        call("readlink", "/img/bin", ret="usr/bin"),
        call("lstat", "/img/hostroot", ret=LNK),
        call("readlink", "/img/hostroot", ret="/"),
        call("lstat", "/img/private", ret=LNK),
        call("readlink", "/img/private", ret="../../home/user/private"),
        *entry("/img/usr"),
    ]
    apply = [
        call("symlink_in", SYSROOT, "usr/bin", "/bin", 0o750),
        call("symlink_in", SYSROOT, "/", "/hostroot", 0o750),
        call("symlink_in", SYSROOT, "../../home/user/private", "/private", 0o750),
        *bind_dir("/host/img/usr", "/usr", READONLY, pperm=0o750),
    ]
    k = FakeKernel(early + apply)
    msgs: list[str] = []
    st = State(k, parent_perm=0o750, verbose=msgs.append)
    op = AutoRoot("/img")
    op.early(st)
    assert k.pos == len(early)
    op.apply(st)
    k.done()
    assert msgs == [
        'creating symlink on "/bin" linkname "usr/bin"',
        'creating symlink on "/hostroot" linkname "/"',
        'creating symlink on "/private" linkname "../../home/user/private"',
        'mounting "/host/img/usr" on "/usr" flags 0x4005',
    ]


def test_a_link_is_a_link_whatever_the_flags() -> None:
    """Even a writable, device, ensure AutoRoot makes the link, and nothing on the host."""
    k = FakeKernel(
        [
            call("listdir", "/img", ret=["data"]),
            call("lstat", "/img/data", ret=LNK),
            call("readlink", "/img/data", ret="/home/user/private"),
            call("symlink_in", SYSROOT, "/home/user/private", "/data", 0o755),
        ]
    )
    st = State(k)
    op = AutoRoot("/img", BIND_WRITABLE | BIND_DEVICE | BIND_ENSURE)
    op.early(st)
    op.apply(st)
    k.done()


def test_flags_reach_every_bind() -> None:
    k = FakeKernel(
        [
            call("listdir", "/var/lib/image", ret=["proc", "usr"]),
            *entry("/var/lib/image/usr"),
            *bind_dir("/host/var/lib/image/usr", "/usr", MOUNT_ATTR_NOSUID),
        ]
    )
    st = State(k)
    op = AutoRoot("/var/lib/image", BIND_WRITABLE | BIND_DEVICE)
    op.early(st)
    op.apply(st)
    k.done()


def test_an_optional_entry_that_vanished_is_skipped() -> None:
    k = FakeKernel(
        [
            call("listdir", "/img", ret=["gone", "usr"]),
            call("lstat", "/img/gone", ret=DIR),
            call("realpath", "/img/gone", err=FileNotFoundError(errno.ENOENT, "gone", "/img/gone")),
            *entry("/img/usr"),
            *bind_dir("/host/img/usr", "/usr", READONLY),
        ]
    )
    st = State(k)
    op = AutoRoot("/img", BIND_OPTIONAL)
    op.early(st)
    op.apply(st)
    k.done()


def test_empty_name_is_never_bound() -> None:
    msgs: list[str] = []
    k = FakeKernel([call("listdir", "/img", ret=[""])])
    st = State(k, verbose=msgs.append)
    op = AutoRoot("/img")
    op.early(st)
    op.apply(st)
    k.done()
    assert msgs == ["got unexpected root entry"]


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("proc", False),
        ("dev", False),
        ("tmp", False),
        ("mnt", False),
        ("etc", False),
        ("", False),
        ("usr", True),
        ("var", True),
        ("etc.d", True),
        (".proc", True),
    ],
)
def test_bindable(name: str, want: bool) -> None:
    assert is_auto_root_bindable(State(FakeKernel([])), name) is want


def test_listing_error_propagates() -> None:
    err = PermissionError(errno.EACCES, "permission denied", "/img")
    k = FakeKernel([call("listdir", "/img", err=err)])
    with pytest.raises(PermissionError) as e:
        AutoRoot("/img").early(State(k))
    assert e.value is err
    k.done()


def test_bind_early_error_aborts() -> None:
    err = FileNotFoundError(errno.ENOENT, "no such file", "/img/b")
    k = FakeKernel(
        [
            call("listdir", "/img", ret=["a", "b", "c"]),
            *entry("/img/a"),
            call("lstat", "/img/b", ret=DIR),
            call("realpath", "/img/b", err=err),
        ]
    )
    with pytest.raises(SourceError) as e:
        AutoRoot("/img").early(State(k))
    assert str(e.value) == "Can't find source path /img/b: No such file or directory"
    k.done()


@pytest.mark.parametrize("step", ["lstat", "readlink"])
def test_link_early_error_aborts(step: str) -> None:
    err = PermissionError(errno.EACCES, "permission denied", "/img/b")
    calls = [
        call("listdir", "/img", ret=["a", "b", "c"]),
        *entry("/img/a"),
        call("lstat", "/img/b", ret=LNK),
        call("readlink", "/img/b", ret="x"),
    ]
    cut = max(i for i, c in enumerate(calls) if c.name == step)
    calls = [*calls[:cut], call(step, "/img/b", err=err)]
    k = FakeKernel(calls)
    with pytest.raises(PermissionError) as e:
        AutoRoot("/img").early(State(k))
    assert e.value is err
    k.done()


def test_bind_apply_error_aborts() -> None:
    err = PermissionError(errno.EPERM, "operation not permitted")
    calls = [
        call("listdir", "/img", ret=["a", "b"]),
        *entry("/img/a"),
        *entry("/img/b"),
        call("stat", "/host/img/a", err=err),
    ]
    k = FakeKernel(calls)
    st = State(k)
    op = AutoRoot("/img")
    op.early(st)
    with pytest.raises(PermissionError) as e:
        op.apply(st)
    assert e.value is err
    k.done()


def test_link_apply_error_aborts() -> None:
    err = PathError("create symlink", "/a", errno.EEXIST)
    k = FakeKernel(
        [
            call("listdir", "/img", ret=["a", "b"]),
            call("lstat", "/img/a", ret=LNK),
            call("readlink", "/img/a", ret="b"),
            *entry("/img/b"),
            call("symlink_in", SYSROOT, "b", "/a", 0o755, err=err),
        ]
    )
    st = State(k)
    op = AutoRoot("/img")
    op.early(st)
    with pytest.raises(PathError) as e:
        op.apply(st)
    assert e.value is err
    k.done()


def test_not_repeatable() -> None:
    k = FakeKernel([call("listdir", "/img", ret=[]), call("listdir", "/other", ret=[])])
    st = State(k)
    first, second = AutoRoot("/img"), AutoRoot("/other")
    first.early(st)
    second.early(st)
    first.apply(st)
    with pytest.raises(OpRepeatError) as e:
        second.apply(st)
    assert str(e.value) == "autoroot is not repeatable"
    k.done()


def test_early_starts_afresh() -> None:
    op = AutoRoot("/img")
    k = FakeKernel(
        [
            call("listdir", "/img", ret=["a", "l"]),
            *entry("/img/a"),
            call("lstat", "/img/l", ret=LNK),
            call("readlink", "/img/l", ret="a"),
            call("listdir", "/img", ret=[]),
        ]
    )
    st = State(k)
    op.early(st)
    op.early(st)
    op.apply(st)  # nothing left to bind or link: no calls
    k.done()


def test_resolved_entries_are_ordinary_ops() -> None:
    """What early learned is a Link op for a link, with the link's contents as written."""
    k = FakeKernel(
        [
            call("listdir", "/img", ret=["lib"]),
            call("lstat", "/img/lib", ret=LNK),
            call("readlink", "/img/lib", ret="usr/lib"),
        ]
    )
    op = AutoRoot("/img")
    op.early(State(k))
    k.done()
    assert op._resolved == [Link("/lib", "usr/lib")]
    assert op.to_wire() == {"host": "/img", "flags": 0}  # derived state never travels


def test_validation() -> None:
    AutoRoot("/", BIND_WRITABLE | BIND_DEVICE | BIND_ENSURE)
    with pytest.raises(OpError):
        AutoRoot("img")
    with pytest.raises(OpError):
        AutoRoot("/img", BIND_OPTIONAL | BIND_ENSURE)
    with pytest.raises(OpError):
        AutoRoot("/img", 0x1000)
    with pytest.raises(OpError):
        AutoRoot("/img", True)
    with pytest.raises(OpError):
        AutoRoot.from_wire({"host": "/img"})
    assert AutoRoot.from_wire({"host": "/img", "flags": 2}) == AutoRoot("/img", BIND_WRITABLE)


def test_builder_and_equality() -> None:
    assert Ops().root("/var/lib/image", BIND_WRITABLE) == [AutoRoot("/var/lib/image", 2)]
    assert Ops().root("/") == [AutoRoot("/", 0)]
    assert AutoRoot("/", 0) != AutoRoot("/", 2)
    assert AutoRoot("/", 0) != AutoRoot("/img", 0)


def test_text() -> None:
    assert AutoRoot.PREFIX == "setting up"
    assert str(AutoRoot("/img", BIND_WRITABLE)) == 'auto root "/img" flags 0x2'
    assert str(AutoRoot("/", 0)) == 'auto root "/" flags 0x0'
