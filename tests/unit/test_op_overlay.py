"""Overlay op: early resolution and escaping, the three shapes, and every error path."""

from __future__ import annotations

import errno

import pytest

from hakurei.errors import MountError, OpError, OpStateError, OverlayArgumentError
from hakurei.ops import Ops, Overlay, State
from hakurei.ops.base import SYSROOT
from hakurei.ops.overlay import escape_overlay

from fakekernel import Call, FakeKernel, call, failing


def enoent(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "no such file or directory", path)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("/host/x", "/host/x"),
        ("/host/x:1", "/host/x\\:1"),
        ("/a,b", "/a\\,b"),
        ("/a\\b", "/a\\\\b"),
        ("/a\\:,b", "/a\\\\\\:\\,b"),
        ("/cut\0here:x", "/cut"),
        ("", ""),
    ],
)
def test_escape(raw: str, want: str) -> None:
    assert escape_overlay(raw) == want


def test_writable_overlay_resolves_and_escapes_every_path() -> None:
    op = Overlay("/nix/store", ["/mnt/lower:1", "/mnt/b"], "/mnt/up", "/mnt/work")
    k = FakeKernel(
        [
            call("realpath", "/mnt/up", ret="/data/a/.upper"),
            call("realpath", "/mnt/work", ret="/data/a/.work"),
            call("realpath", "/mnt/lower:1", ret="/mnt/lower:1"),
            call("realpath", "/mnt/b", ret="/srv/b,c"),
            call("mkdir_in", SYSROOT, "/nix/store", 0o750, 0o750, ret=5),
            call(
                "mount_here",
                5,
                "overlay",
                "overlay",
                0,
                "upperdir=/host/data/a/.upper,workdir=/host/data/a/.work,"
                "lowerdir=/host/mnt/lower\\:1:/host/srv/b\\,c,userxattr",
            ),
            call("close", 5),
        ]
    )
    st = State(k, parent_perm=0o750)
    op.early(st)
    op.apply(st)
    k.done()


def test_ephemeral_overlay_uses_fresh_dirs_in_the_intermediate_root() -> None:
    op = Overlay("/", ["/var/lib/base/debian:f92c9052"], "/", None)
    k = FakeKernel(
        [
            call("realpath", "/var/lib/base/debian:f92c9052", ret="/var/lib/base/debian:f92c9052"),
            call("mkdir", "/overlay.upper.0", 0o700),
            call("mkdir", "/overlay.work.1", 0o700),
            call("mkdir_in", SYSROOT, "/", 0o755, 0o755, ret=5),
            call(
                "mount_here",
                5,
                "overlay",
                "overlay",
                0,
                "upperdir=/overlay.upper.0,workdir=/overlay.work.1,"
                "lowerdir=/host/var/lib/base/debian\\:f92c9052,userxattr",
            ),
            call("close", 5),
        ]
    )
    st = State(k)
    op.early(st)
    op.apply(st)
    k.done()


def test_readonly_overlay_has_no_upper_or_work() -> None:
    op = Overlay("/usr", ["/a", "/b", "/c"])
    k = FakeKernel(
        [
            call("realpath", "/a", ret="/a"),
            call("realpath", "/b", ret="/b"),
            call("realpath", "/c", ret="/x/c"),
            call("mkdir_in", SYSROOT, "/usr", 0o755, 0o755, ret=5),
            call(
                "mount_here",
                5,
                "overlay",
                "overlay",
                0,
                "lowerdir=/host/a:/host/b:/host/x/c,userxattr",
            ),
            call("close", 5),
        ]
    )
    st = State(k)
    op.early(st)
    op.apply(st)
    k.done()


def test_readonly_overlay_needs_two_lowers() -> None:
    """Refused before anything is made in the container's root."""
    op = Overlay("/usr", ["/a"])
    k = FakeKernel([call("realpath", "/a", ret="/a")])
    st = State(k)
    op.early(st)
    with pytest.raises(OverlayArgumentError) as e:
        op.apply(st)
    assert str(e.value) == "readonly overlay requires at least two lowerdir"
    k.done()


@pytest.mark.parametrize(
    ("upper", "work", "early"),
    [
        ("/up", "/work", [call("realpath", "/up", ret="/up"), call("realpath", "/work", ret="/w")]),
        ("/", None, []),
    ],
)
def test_writable_overlay_needs_a_lower(upper: str, work: str | None, early: list[Call]) -> None:
    op = Overlay("/o", [], upper, work)
    calls = list(early)  # nothing is made in the container's root
    if work is None:
        calls += [call("mkdir", "/overlay.upper.0", 0o700), call("mkdir", "/overlay.work.1", 0o700)]
    k = FakeKernel(calls)
    st = State(k)
    op.early(st)
    with pytest.raises(OverlayArgumentError) as e:
        op.apply(st)
    assert str(e.value) == "overlay requires at least one lowerdir"
    k.done()


def test_upper_without_work_must_be_root() -> None:
    op = Overlay("/o", ["/a"], "/etc", None)
    k = FakeKernel([])
    with pytest.raises(OverlayArgumentError) as e:
        op.early(State(k))
    assert str(e.value) == 'upperdir has unexpected value "/etc"'
    k.done()


def test_upper_nil_work_set_is_unreachable_past_validation() -> None:
    # Only a bypassed constructor gets here; early still refuses it.
    op = Overlay("/o", ["/a"], "/u", "/w")
    op.upper = None
    k = FakeKernel([])
    with pytest.raises(OpStateError) as e:
        op.early(State(k))
    assert str(e.value) == "impossible overlay state reached"
    k.done()


@pytest.mark.parametrize("failing", [0, 1, 2, 3])
def test_resolution_errors_propagate(failing: int) -> None:
    paths = ["/u", "/w", "/l1", "/l2"]
    calls = [call("realpath", p, ret=p) for p in paths[:failing]]
    calls.append(call("realpath", paths[failing], err=enoent(paths[failing])))
    op = Overlay("/o", ["/l1", "/l2"], "/u", "/w")
    k = FakeKernel(calls)
    with pytest.raises(FileNotFoundError) as e:
        op.early(State(k))
    assert e.value.filename == paths[failing]
    k.done()


APPLY = [
    call("mkdir", "/overlay.upper.0", 0o700),
    call("mkdir", "/overlay.work.1", 0o700),
    call("mkdir_in", SYSROOT, "/o", 0o755, 0o755, ret=5),
    call(
        "mount_here",
        5,
        "overlay",
        "overlay",
        0,
        "upperdir=/overlay.upper.0,workdir=/overlay.work.1,lowerdir=/host/l1,userxattr",
    ),
    call("close", 5),
]


@pytest.mark.parametrize("fail_at", range(len(APPLY)))
def test_apply_errors_propagate_and_close_the_target(fail_at: int) -> None:
    op = Overlay("/o", ["/l1"], "/", None)
    err: OSError
    if APPLY[fail_at].name == "mount_here":
        err = MountError("overlay", ".", "overlay", 0, "", errno.EPERM)
    else:
        err = PermissionError(errno.EACCES, "permission denied")
    k = FakeKernel([call("realpath", "/l1", ret="/l1"), *failing(APPLY, fail_at, err)])
    st = State(k)
    op.early(st)
    with pytest.raises(OSError) as e:
        op.apply(st)
    assert e.value is err
    k.done()


def test_target_is_normalised_and_the_layers_are_not() -> None:
    op = Overlay("/nix//store/./", ["/a/../b"], "/u/", "/w/.")
    assert (op.target, op.lower, op.upper, op.work) == ("/nix/store", ["/a/../b"], "/u/", "/w/.")
    assert str(op) == 'overlay on "/nix/store" with 1 layers'
    assert op.to_wire()["target"] == "/nix/store"
    assert Overlay.from_wire({**op.to_wire(), "target": "/nix/x/../store"}) == op
    with pytest.raises(OpError, match=r"^overlay: path .* climbs above /$"):
        Overlay("/nix/../../store", ["/a"])


def test_early_resets_what_a_previous_run_learned() -> None:
    op = Overlay("/o", ["/a", "/b"])
    for target in ("/x", "/y"):
        k = FakeKernel(
            [
                call("realpath", "/a", ret=target),
                call("realpath", "/b", ret="/b"),
                call("mkdir_in", SYSROOT, "/o", 0o755, 0o755, ret=5),
                call(
                    "mount_here",
                    5,
                    "overlay",
                    "overlay",
                    0,
                    f"lowerdir=/host{target}:/host/b,userxattr",
                ),
                call("close", 5),
            ]
        )
        st = State(k)
        op.early(st)
        op.apply(st)
        k.done()


def test_validation() -> None:
    Overlay("/o", ["/a"], "/u", "/w")
    Overlay("/o", ["/a"], "/", None)
    Overlay("/o", [])
    with pytest.raises(OpError, match="work is set but upper is not"):
        Overlay("/o", ["/a"], None, "/w")
    with pytest.raises(OpError):
        Overlay("o", ["/a"])
    with pytest.raises(OpError):
        Overlay("/o", ["a"])
    with pytest.raises(OpError):
        Overlay("/o", ["/a"], "u", "/w")
    with pytest.raises(OpError):
        Overlay("/o", "/a")  # type: ignore[arg-type]


def test_builders_and_equality() -> None:
    ops = (
        Ops()
        .overlay("/nix/store", "/u", "/w", "/a", "/b")
        .overlay_ephemeral("/", "/a")
        .overlay_readonly("/usr", "/a", "/b")
    )
    assert ops == [
        Overlay("/nix/store", ["/a", "/b"], "/u", "/w"),
        Overlay("/", ["/a"], "/", None),
        Overlay("/usr", ["/a", "/b"], None, None),
    ]
    assert Overlay("/o", ["/a"]) != Overlay("/o", ["/a", "/b"])
    assert Overlay("/o", ["/a"]) != Overlay("/p", ["/a"])
    assert Overlay("/o", ["/a"], "/u", "/w") != Overlay("/o", ["/a"], "/u", "/x")
    assert Overlay("/o", ["/a"], "/", None) != Overlay("/o", ["/a"])


def test_derived_state_does_not_affect_equality_or_wire() -> None:
    a = Overlay("/o", ["/a", "/b"])
    b = Overlay("/o", ["/a", "/b"])
    k = FakeKernel([call("realpath", "/a", ret="/x"), call("realpath", "/b", ret="/y")])
    a.early(State(k))
    assert a == b
    assert a.to_wire() == {"target": "/o", "lower": ["/a", "/b"], "upper": None, "work": None}
    assert Overlay.from_wire(a.to_wire()) == a


def test_text() -> None:
    assert Overlay.PREFIX == "mounting"
    assert str(Overlay("/nix/store", ["/a", "/b"])) == 'overlay on "/nix/store" with 2 layers'
    assert str(Overlay("/x", [], "/", None)) == 'overlay on "/x" with 0 layers'
