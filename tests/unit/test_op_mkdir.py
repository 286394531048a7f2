"""Mkdir op (reference §7.7)."""

from __future__ import annotations

import errno

import pytest

from hakurei.errors import OpError
from hakurei.ops import REGISTRY, Mkdir, Ops, State
from hakurei.ops.mkdir import perm_text

from fakekernel import FakeKernel, call


def test_apply_uses_perm_for_every_directory() -> None:
    k = FakeKernel([call("makedirs", "/sysroot/a/b", 0o700)])
    Mkdir("/a/b", 0o700).apply(State(k, parent_perm=0o755))
    k.done()


def test_apply_error_propagates() -> None:
    k = FakeKernel([call("makedirs", "/sysroot/a", 0o755, err=PermissionError(errno.EPERM, "x"))])
    with pytest.raises(PermissionError):
        Mkdir("/a").apply(State(k))
    k.done()


@pytest.mark.parametrize(
    ("perm", "text"),
    [
        (0o755, "-rwxr-xr-x"),
        (0o700, "-rwx------"),
        (0, "----------"),
        (0o777, "-rwxrwxrwx"),
        (0o1777, "trwxrwxrwx"),
        (0o6750, "ugrwxr-x---"),
    ],
)
def test_perm_text_matches_go_filemode(perm: int, text: str) -> None:
    assert perm_text(perm) == text


@pytest.mark.parametrize("args", [("tmp",), ("/tmp", -1), ("/tmp", 0o10000), ("/tmp", "755")])
def test_invalid(args: tuple[object, ...]) -> None:
    with pytest.raises(OpError, match=r"^mkdir"):
        Mkdir(*args)  # type: ignore[arg-type]


def test_equality_text_wire() -> None:
    assert Mkdir("/tmp", 0o755) == Mkdir("/tmp")
    assert Mkdir("/tmp", 0o700) != Mkdir("/tmp")
    assert Ops().mkdir("/etc", 0o755) == [Mkdir("/etc")]
    assert str(Mkdir("/tmp")) == 'directory "/tmp" perm -rwxr-xr-x'
    assert Mkdir.PREFIX == "creating"
    op = Mkdir("/x", 0o1777)
    assert REGISTRY[op.TAG].from_wire(op.to_wire()) == op
