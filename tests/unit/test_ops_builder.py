"""The fluent Ops builder: each method appends exactly the op the reference builds."""

from __future__ import annotations

import pytest

from hakurei.errors import OpError
from hakurei.ops import (
    BIND_DEVICE,
    BIND_WRITABLE,
    REGISTRY,
    AutoEtc,
    AutoRoot,
    Bind,
    Chmod,
    Dev,
    File,
    Link,
    Lock,
    Mkdir,
    Mqueue,
    Op,
    Ops,
    Overlay,
    Place,
    Proc,
    Remount,
    Tmpfs,
)
from hakurei.std import MS_NODEV, MS_NOSUID, MS_RDONLY


def everything() -> Ops:
    return (
        Ops()
        .bind("/usr", "/usr")
        .bind("/dev/dri", "/dev/dri", BIND_WRITABLE | BIND_DEVICE)
        .proc("/proc")
        .dev("/dev")
        .dev("/dev", mqueue=True)
        .dev_writable("/dev", True)
        .tmpfs("/tmp", 1 << 20, 0o1777)
        .readonly("/etc/hakurei/readonly", 0o700)
        .link("/bin", "usr/bin")
        .link("/etc/resolv.conf", "/run/resolv.conf", dereference=True)
        .mkdir("/run/user/1000", 0o700)
        .place("/etc/hostname", b"box\n")
        .overlay("/nix/store", "/u", "/w", "/a", "/b")
        .overlay_ephemeral("/", "/a")
        .overlay_readonly("/usr", "/a", "/b")
        .etc("/etc", "c6e0b4a1")
        .root("/var/lib/image", BIND_WRITABLE)
        .remount("/", MS_RDONLY)
        .place("/run/data", b"d", 0o640, writable=True)
        .file("/tmp/f", b"f", 0o644)
        .chmod("/tmp/f", 0o600)
        .mqueue("/dev/mqueue")
        .lock("/tmp/f")
    )


def test_each_method_appends_its_op_in_order() -> None:
    assert everything() == [
        Bind("/usr", "/usr", 0),
        Bind("/dev/dri", "/dev/dri", BIND_WRITABLE | BIND_DEVICE),
        Proc("/proc"),
        Dev("/dev", False, False),
        Dev("/dev", True, False),
        Dev("/dev", True, True),
        Tmpfs("/tmp", 1 << 20, 0o1777, "ephemeral", MS_NOSUID | MS_NODEV),
        Tmpfs("/etc/hakurei/readonly", 0, 0o700, "readonly", MS_RDONLY | MS_NOSUID | MS_NODEV),
        Link("/bin", "usr/bin", False),
        Link("/etc/resolv.conf", "/run/resolv.conf", True),
        Mkdir("/run/user/1000", 0o700),
        Place("/etc/hostname", b"box\n"),
        Overlay("/nix/store", ["/a", "/b"], "/u", "/w"),
        Overlay("/", ["/a"], "/", None),
        Overlay("/usr", ["/a", "/b"], None, None),
        Mkdir("/etc", 0o755),
        Bind("/etc", "/etc/.host/c6e0b4a1", 0),
        AutoEtc("c6e0b4a1"),
        AutoRoot("/var/lib/image", BIND_WRITABLE),
        Remount("/", MS_RDONLY),
        Place("/run/data", b"d", 0o640, True),
        File("/tmp/f", b"f", 0o644),
        Chmod("/tmp/f", 0o600),
        Mqueue("/dev/mqueue"),
        Lock("/tmp/f"),
    ]


def test_methods_chain_on_one_list() -> None:
    o = Ops()
    assert o.proc("/proc") is o
    assert o.etc() is o
    assert len(o) == 4


def test_etc_defaults_to_host_etc_under_prefix_host() -> None:
    assert Ops().etc() == [
        Mkdir("/etc", 0o755),
        Bind("/etc", "/etc/.host/host", 0),
        AutoEtc("host"),
    ]
    assert Ops().etc("/srv/etc") == [
        Mkdir("/etc", 0o755),
        Bind("/srv/etc", "/etc/.host/host", 0),
        AutoEtc("host"),
    ]


def test_equality_is_over_type_and_every_field() -> None:
    assert everything() == everything()
    assert Ops().dev("/dev") != Ops().dev_writable("/dev")
    assert Ops().bind("/a", "/a") != Ops().bind("/a", "/a", BIND_WRITABLE)
    assert Ops().tmpfs("/x", 0, 0o755) != Ops().readonly("/x", 0o755)
    assert Ops().overlay_ephemeral("/x", "/a") != Ops().overlay_readonly("/x", "/a")
    # same field values, different op
    assert Proc("/x") != Mkdir("/x", 0o755)
    assert Ops().proc("/proc").mkdir("/x") != Ops().mkdir("/x").proc("/proc")
    # hashable, consistently with equality
    assert len(set(everything())) == len(everything())
    assert {Dev("/dev"), Dev("/dev")} == {Dev("/dev")}


def test_builders_validate_at_once() -> None:
    with pytest.raises(OpError):
        Ops().bind("usr", "/usr")
    with pytest.raises(OpError):
        Ops().etc("/etc", "../x")
    with pytest.raises(OpError):
        Ops().overlay("/o", "u", "/w", "/a")


def test_registry_knows_every_op_and_round_trips_it() -> None:
    assert set(REGISTRY) == {
        "bind",
        "proc",
        "dev",
        "tmpfs",
        "symlink",
        "mkdir",
        "place",
        "remount",
        "overlay",
        "autoetc",
        "autoroot",
        "chmod",
        "file",
        "mqueue",
        "lock",
    }
    for op in everything():
        assert isinstance(op, Op)
        back = REGISTRY[op.TAG].from_wire(op.to_wire())
        assert type(back) is type(op)
        assert back == op
