"""Symlink op (reference §7.6, HEAD semantics)."""

from __future__ import annotations

import errno

import pytest

from hakurei.errors import AbsoluteError, OpError, OpStateError, PathError
from hakurei.ops import REGISTRY, Link, Ops, State
from hakurei.ops.base import SYSROOT

from fakekernel import FakeKernel, call


def test_plain_link_is_made_inside_the_root_with_the_parent_perm() -> None:
    k = FakeKernel([call("symlink_in", SYSROOT, "/proc/mounts", "/etc/mtab", 0o700)])
    st = State(k, parent_perm=0o700)
    op = Link("/etc/mtab", "/proc/mounts")
    op.early(st)  # no host access without dereference
    op.apply(st)
    k.done()


def test_relative_contents_are_uninterpreted() -> None:
    k = FakeKernel([call("symlink_in", SYSROOT, "pts/ptmx", "/dev/ptmx", 0o755)])
    Link("/dev/ptmx", "pts/ptmx").apply(State(k))
    k.done()


def test_dereference_reads_one_level_on_the_host() -> None:
    op = Link("/run/current-system", "/run/current-system", dereference=True)
    k = FakeKernel(
        [
            call("readlink", "/run/current-system", ret="/nix/store/abc-system"),
            call("symlink_in", SYSROOT, "/nix/store/abc-system", "/run/current-system", 0o755),
        ]
    )
    st = State(k)
    op.early(st)
    op.apply(st)
    k.done()
    assert op.linkname == "/run/current-system"  # early never changes a wire field
    assert op == Link("/run/current-system", "/run/current-system", True)


def test_dereference_readlink_error_propagates() -> None:
    k = FakeKernel([call("readlink", "/x", err=OSError(errno.EINVAL, "Invalid argument", "/x"))])
    with pytest.raises(OSError) as info:
        Link("/x", "/x", True).early(State(k))
    assert info.value.errno == errno.EINVAL
    k.done()


def test_dereference_needs_an_absolute_linkname() -> None:
    with pytest.raises(OpError, match=r"^symlink: "):
        Link("/x", "x", True)
    op = Link("/x", "/x", True)
    op.linkname = "x"  # bypassing validation, as a broken wire decoder might
    with pytest.raises(AbsoluteError) as info:
        op.early(State(FakeKernel([])))
    assert str(info.value) == 'path "x" is not absolute'


def test_dereference_without_early_is_an_impossible_state() -> None:
    with pytest.raises(OpStateError, match="impossible symlink state reached"):
        Link("/x", "/y", True).apply(State(FakeKernel([])))


@pytest.mark.parametrize(
    "err",
    [
        PathError("resolve", "/a", errno.ENOTDIR),
        PathError("create symlink", "/a/b", errno.EEXIST),
    ],
)
def test_apply_errors_propagate(err: PathError) -> None:
    """An existing path is an error: a link is never "ensured"."""
    k = FakeKernel([call("symlink_in", SYSROOT, "c", "/a/b", 0o755, err=err)])
    with pytest.raises(PathError) as info:
        Link("/a/b", "c").apply(State(k))
    assert info.value is err
    k.done()


def test_target_is_normalised_and_the_contents_are_not() -> None:
    op = Link("/a/./b//c/../d/", "../x/./y")
    assert (op.target, op.linkname) == ("/a/b/d", "../x/./y")
    assert str(op) == 'symlink on "/a/b/d" linkname "../x/./y"'
    assert REGISTRY[op.TAG].from_wire({**op.to_wire(), "target": "/a/b/c/../d"}) == op
    k = FakeKernel([call("symlink_in", SYSROOT, "../x/./y", "/a/b/d", 0o755)])
    op.apply(State(k))
    k.done()


@pytest.mark.parametrize("target", ["/..", "/a/../../b"])
def test_target_above_the_root_is_refused(target: str) -> None:
    with pytest.raises(OpError, match=r"^symlink: path .* climbs above /$"):
        Link(target, "x")


@pytest.mark.parametrize(
    "args",
    [("etc/mtab", "/proc/mounts"), ("/etc/mtab", ""), ("/etc/mtab", "a\0b"), ("/x", 3)],
)
def test_invalid(args: tuple[object, ...]) -> None:
    with pytest.raises(OpError, match=r"^symlink"):
        Link(*args)  # type: ignore[arg-type]


def test_equality_text_wire() -> None:
    assert Link("/a", "b") == Link("/a", "b")
    assert Link("/a", "b") != Link("/a", "c")
    assert Link("/a", "/b") != Link("/a", "/b", True)
    assert Ops().link("/a", "b") == [Link("/a", "b")]
    assert str(Link("/etc/mtab", "/proc/mounts")) == (
        'symlink on "/etc/mtab" linkname "/proc/mounts"'
    )
    assert str(Link("/a", 'q"uote')) == 'symlink on "/a" linkname "q\\"uote"'
    assert Link.PREFIX == "creating"
    op = Link("/a", "/b", True)
    op.contents = "/derived"
    back = REGISTRY[op.TAG].from_wire(op.to_wire())
    assert back == op
    assert isinstance(back, Link)
    assert back.contents is None
