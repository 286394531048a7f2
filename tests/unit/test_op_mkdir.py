"""Mkdir op (reference §7.7)."""

from __future__ import annotations

import errno

import pytest

from hakurei.errors import OpError, PathError
from hakurei.ops import REGISTRY, Mkdir, Ops, State
from hakurei.ops.base import SYSROOT
from hakurei.ops.mkdir import perm_text

from fakekernel import FakeKernel, call


@pytest.mark.parametrize(
    ("perm", "pperm", "want"),
    [
        (0o700, 0o755, 0o700),
        (0o750, 0o755, 0o750),
        (0o705, 0o755, 0o705),
        (0o1777, 0o750, 0o750),
        (0o777, 0o700, 0o700),
        (0o000, 0o755, 0o700),
    ],
)
def test_apply_gives_perm_to_the_leaf_only(perm: int, pperm: int, want: int) -> None:
    """Missing parents get the state's parent perm, less the group/other access perm
    denies (bubblewrap's rule): --perms 1777 never lands on a parent."""
    k = FakeKernel([call("mkdir_in", SYSROOT, "/a/b", perm, want, ret=5), call("close", 5)])
    Mkdir("/a/b", perm).apply(State(k, parent_perm=pperm))
    k.done()


def test_apply_error_propagates() -> None:
    err = PathError("create directory", "/a", errno.EPERM)
    k = FakeKernel([call("mkdir_in", SYSROOT, "/a", 0o755, 0o755, err=err)])
    with pytest.raises(PathError) as info:
        Mkdir("/a").apply(State(k))
    assert info.value is err
    k.done()


def test_apply_close_error_propagates() -> None:
    k = FakeKernel(
        [
            call("mkdir_in", SYSROOT, "/a", 0o755, 0o755, ret=5),
            call("close", 5, err=OSError(errno.EIO, "I/O error")),
        ]
    )
    with pytest.raises(OSError):
        Mkdir("/a").apply(State(k))
    k.done()


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/a/./b//c/../d/", "/a/b/d"),
        ("/", "/"),
        ("//", "/"),
        ("/a/..", "/"),
        ("/./a/", "/a"),
        ("/a/b/../../c", "/c"),
        ("/..a/b..", "/..a/b.."),
        ("/my dir/x", "/my dir/x"),
    ],
)
def test_path_is_normalised_when_built(path: str, want: str) -> None:
    op = Mkdir(path)
    assert op.path == want
    assert str(op) == f'directory "{want}" perm -rwxr-xr-x'
    assert op.to_wire() == {"path": want, "perm": 0o755}
    assert Mkdir.from_wire({"path": path, "perm": 0o755}) == op
    k = FakeKernel([call("mkdir_in", SYSROOT, want, 0o755, 0o755, ret=5), call("close", 5)])
    op.apply(State(k))
    k.done()


@pytest.mark.parametrize("path", ["/..", "/a/../../b", "/../host/tmp/x", "/a/b/../../.."])
def test_path_above_the_root_is_an_op_error(path: str) -> None:
    with pytest.raises(OpError) as info:
        Mkdir(path)
    assert str(info.value) == f'mkdir: path "{path}" climbs above /'
    with pytest.raises(OpError, match=r"^mkdir: path .* climbs above /$"):
        Mkdir.from_wire({"path": path, "perm": 0o755})


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
