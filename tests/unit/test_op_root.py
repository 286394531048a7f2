"""AutoRoot op: the host's top level becomes binds, minus what the container provides."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from hakurei.errors import OpError, OpRepeatError
from hakurei.init.kernel import (
    AT_RECURSIVE,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
)
from hakurei.ops import BIND_DEVICE, BIND_ENSURE, BIND_OPTIONAL, BIND_WRITABLE, AutoRoot, Ops, State
from hakurei.ops.root import is_auto_root_bindable

from fakekernel import Call, FakeKernel, call

DIR = os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, 0, 0, 0))
ROOT = ["bin", "dev", "etc", "home", "lib64", "mnt", "nix", "proc", "root", "sys", "tmp", "usr"]
BOUND = ["bin", "home", "lib64", "nix", "root", "sys", "usr"]


def bind_dir(source: str, target: str, mflags: int, attrs: int) -> list[Call]:
    """The apply calls of a Bind whose (resolved) source is a directory."""
    return [
        call("stat", source, ret=DIR),
        call("makedirs", target, 0o700),
        call("mount", source, target, "", mflags, ""),
        call("mount_setattr", target, AT_RECURSIVE, attrs),
    ]


def test_binds_every_bindable_entry_read_only() -> None:
    early = [call("listdir", "/", ret=ROOT)]
    early += [call("realpath", f"/{n}", ret="/usr/bin" if n == "bin" else f"/{n}") for n in BOUND]
    apply: list[Call] = []
    for n in BOUND:
        source = "/host/usr/bin" if n == "bin" else f"/host/{n}"
        apply += bind_dir(
            source,
            f"/sysroot/{n}",
            0xD000,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY,
        )
    k = FakeKernel(early + apply)
    msgs: list[str] = []
    st = State(k, verbose=msgs.append)
    op = AutoRoot("/", 0)
    op.early(st)
    assert k.pos == len(early), "early must only list and resolve"
    op.apply(st)
    k.done()
    assert msgs[0] == 'mounting "/host/usr/bin" on "/sysroot/bin" flags 0x4005'
    assert msgs[1] == 'mounting "/sysroot/home" flags 0x4005'


def test_flags_reach_every_bind() -> None:
    k = FakeKernel(
        [
            call("listdir", "/var/lib/image", ret=["proc", "usr"]),
            call("realpath", "/var/lib/image/usr", ret="/var/lib/image/usr"),
            *bind_dir("/host/var/lib/image/usr", "/sysroot/usr", 0xD000, MOUNT_ATTR_NOSUID),
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
            call("realpath", "/img/gone", err=FileNotFoundError(errno.ENOENT, "gone", "/img/gone")),
            call("realpath", "/img/usr", ret="/img/usr"),
            *bind_dir(
                "/host/img/usr",
                "/sysroot/usr",
                0xD000,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY,
            ),
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
            call("realpath", "/img/a", ret="/img/a"),
            call("realpath", "/img/b", err=err),
        ]
    )
    with pytest.raises(FileNotFoundError) as e:
        AutoRoot("/img").early(State(k))
    assert e.value is err
    k.done()


def test_bind_apply_error_aborts() -> None:
    err = PermissionError(errno.EPERM, "operation not permitted")
    calls = [
        call("listdir", "/img", ret=["a", "b"]),
        call("realpath", "/img/a", ret="/img/a"),
        call("realpath", "/img/b", ret="/img/b"),
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
            call("listdir", "/img", ret=["a"]),
            call("realpath", "/img/a", ret="/img/a"),
            call("listdir", "/img", ret=[]),
        ]
    )
    st = State(k)
    op.early(st)
    op.early(st)
    op.apply(st)  # nothing left to bind: no calls
    k.done()


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
