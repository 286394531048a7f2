"""Bind op (reference §7.1): early resolution, apply call sequences, flags, texts."""

from __future__ import annotations

import errno
import os

import pytest

from hakurei.errors import (
    AbsoluteError,
    MountError,
    OpError,
    OpStateError,
    PathError,
    SourceError,
)
from hakurei.ops import (
    BIND_DEVICE,
    BIND_ENSURE,
    BIND_OPTIONAL,
    BIND_WRITABLE,
    REGISTRY,
    Bind,
    Ops,
    State,
)
from hakurei.ops.base import SYSROOT
from hakurei.std import MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY

from fakekernel import Call, FakeKernel, call, failing

DIR = os.stat_result((0o040755, 0, 0, 0, 0, 0, 0, 0, 0, 0))
CHR = os.stat_result((0o020666, 0, 0, 0, 0, 0, 0, 0, 0, 0))


def bind_calls(source: str, fd: int, flags: int, tree: int = 9) -> list[Call]:
    """What bind_onto issues: a detached copy, its attributes, then attached onto ``fd``."""
    attrs = MOUNT_ATTR_NOSUID
    attrs |= MOUNT_ATTR_NODEV if flags & 0x4 else 0
    attrs |= MOUNT_ATTR_RDONLY if flags & 0x1 else 0
    recursive = bool(flags & 0x4000)
    return [
        call("open_tree", source, recursive, ret=tree),
        call("setattr_fd", tree, attrs, recursive),
        call("move_mount", tree, fd),
        call("close", tree),
    ]


def enoent(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "No such file or directory", path)


def eperm() -> PermissionError:
    return PermissionError(errno.EPERM, "Operation not permitted")


def run_early(op: Bind, calls: list[Call]) -> None:
    k = FakeKernel(calls)
    op.early(State(k))
    k.done()


def run_apply(op: Bind, calls: list[Call], log: list[str] | None = None) -> None:
    k = FakeKernel(calls)
    op.apply(State(k, verbose=log.append if log is not None else None))
    k.done()


# -- early -------------------------------------------------------------------------


def test_early_resolves_the_host_source() -> None:
    op = Bind("/bin/", "/bin/")
    run_early(op, [call("realpath", "/bin/", ret="/usr/bin")])
    assert op.source_final == "/usr/bin"


def test_early_missing_source_fails_unless_optional_in_bubblewraps_words() -> None:
    with pytest.raises(SourceError) as info:
        run_early(Bind("/bin/", "/bin/"), [call("realpath", "/bin/", err=enoent("/bin/"))])
    assert info.value.errno == errno.ENOENT
    assert str(info.value) == "Can't find source path /bin/: No such file or directory"


def test_early_missing_optional_source_skips_the_op() -> None:
    op = Bind("/bin/", "/bin/", BIND_OPTIONAL)
    run_early(op, [call("realpath", "/bin/", err=enoent("/bin/"))])
    assert op.source_final is None
    run_apply(op, [])  # nothing at all happens


def test_early_optional_does_not_hide_other_errors() -> None:
    op = Bind("/secret", "/secret", BIND_OPTIONAL)
    with pytest.raises(SourceError) as info:
        run_early(op, [call("realpath", "/secret", err=eperm())])
    assert info.value.errno == errno.EPERM


def test_early_ensure_creates_the_host_source_first() -> None:
    op = Bind("/var/lib/x", "/x", BIND_ENSURE)
    run_early(
        op,
        [
            call("makedirs", "/var/lib/x", 0o700),
            call("realpath", "/var/lib/x", ret="/var/lib/x"),
        ],
    )
    assert op.source_final == "/var/lib/x"


def test_early_ensure_error_propagates() -> None:
    with pytest.raises(PermissionError):
        run_early(
            Bind("/var/lib/x", "/x", BIND_ENSURE),
            [call("makedirs", "/var/lib/x", 0o700, err=eperm())],
        )


def test_early_rejects_a_relative_resolution() -> None:
    with pytest.raises(AbsoluteError):
        run_early(Bind("/a", "/a"), [call("realpath", "/a", ret="a")])


# -- apply -------------------------------------------------------------------------


def test_apply_without_early_is_an_impossible_state() -> None:
    with pytest.raises(OpStateError) as info:
        run_apply(Bind("/usr", "/usr"), [])
    assert str(info.value) == "impossible bind state reached"


@pytest.mark.parametrize(
    ("flags", "mflags"),
    [
        (0, 0x4005),
        (BIND_DEVICE, 0x4001),
        (BIND_WRITABLE, 0x4004),
        (BIND_WRITABLE | BIND_DEVICE, 0x4000),
        (BIND_OPTIONAL, 0x4005),
        (BIND_ENSURE | BIND_WRITABLE, 0x4004),
    ],
)
def test_apply_directory_flags(flags: int, mflags: int) -> None:
    """A directory target is found (or made, 0700) inside the root; the bind goes onto its fd."""
    op = Bind("/bin/", "/bin/", flags)
    op.source_final = "/usr/bin"
    log: list[str] = []
    run_apply(
        op,
        [
            call("stat", "/host/usr/bin", ret=DIR),
            call("mkdir_in", SYSROOT, "/bin", 0o755, 0o755, ret=5),
            *bind_calls("/host/usr/bin", 5, mflags),
            call("close", 5),
        ],
        log,
    )
    assert log == [f'mounting "/host/usr/bin" on "/bin" flags {mflags:#x}']


def test_apply_same_source_and_target_prints_the_target_only() -> None:
    op = Bind("/usr", "/usr")
    op.source_final = "/usr"
    log: list[str] = []
    run_apply(
        op,
        [
            call("stat", "/host/usr", ret=DIR),
            call("mkdir_in", SYSROOT, "/usr", 0o755, 0o755, ret=5),
            *bind_calls("/host/usr", 5, 0x4005),
            call("close", 5),
        ],
        log,
    )
    assert log == ['mounting "/usr" flags 0x4005']


def test_apply_file_source_gets_a_file_target() -> None:
    """A non-directory source is bound onto a file made (0444) or found inside the root."""
    op = Bind("/dev/null", "/dev/null", BIND_WRITABLE | BIND_DEVICE)
    op.source_final = "/dev/null"
    run_apply(
        op,
        [
            call("stat", "/host/dev/null", ret=CHR),
            call("file_in", SYSROOT, "/dev/null", 0o444, 0o755, ret=5),
            *bind_calls("/host/dev/null", 5, 0x4000),
            call("close", 5),
        ],
    )


def test_apply_stat_error_propagates() -> None:
    op = Bind("/a", "/a")
    op.source_final = "/a"
    with pytest.raises(PermissionError):
        run_apply(op, [call("stat", "/host/a", err=eperm())])


def test_apply_directory_target_error_propagates() -> None:
    op = Bind("/a", "/a")
    op.source_final = "/a"
    err = PathError("create directory", "/a", errno.EROFS)
    with pytest.raises(PathError) as info:
        run_apply(
            op,
            [
                call("stat", "/host/a", ret=DIR),
                call("mkdir_in", SYSROOT, "/a", 0o755, 0o755, err=err),
            ],
        )
    assert info.value is err


def test_apply_file_target_error_propagates() -> None:
    op = Bind("/dev/null", "/dev/null")
    op.source_final = "/dev/null"
    err = PathError("mount a file on", "/dev/null", errno.EISDIR)
    with pytest.raises(PathError) as info:
        run_apply(
            op,
            [
                call("stat", "/host/dev/null", ret=CHR),
                call("file_in", SYSROOT, "/dev/null", 0o444, 0o755, err=err),
            ],
        )
    assert str(info.value) == "cannot mount a file on /dev/null: is a directory"


def apply_calls() -> list[Call]:
    return [
        call("stat", "/host/a", ret=DIR),
        call("mkdir_in", SYSROOT, "/b", 0o755, 0o755, ret=5),
        *bind_calls("/host/a", 5, 0x4005),
        call("close", 5),
    ]


@pytest.mark.parametrize("at", range(2, len(apply_calls())))
def test_apply_mount_errors_propagate_and_close_the_target(at: int) -> None:
    """open_tree, setattr_fd, move_mount or a close fails: both fds are still closed."""
    op = Bind("/a", "/b")
    op.source_final = "/a"
    err = MountError("/host/a", "/b", "", 0xD000, "", errno.EACCES)
    with pytest.raises(MountError) as info:
        run_apply(op, failing(apply_calls(), at, err))
    assert info.value is err


def test_early_then_apply_end_to_end() -> None:
    op = Bind("/etc", "/etc/.host/host")
    k = FakeKernel(
        [
            call("realpath", "/etc", ret="/etc"),
            call("stat", "/host/etc", ret=DIR),
            call("mkdir_in", SYSROOT, "/etc/.host/host", 0o755, 0o755, ret=5),
            *bind_calls("/host/etc", 5, 0x4005),
            call("close", 5),
        ]
    )
    st = State(k)
    op.early(st)
    op.apply(st)
    k.done()


# -- validation, equality, texts, wire ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("usr", "/usr"), "bind:"),
        (("/usr", "usr"), "bind:"),
        (("", "/usr"), "bind:"),
        (("/usr", "/usr", BIND_OPTIONAL | BIND_ENSURE), "optional and ensure"),
        (("/usr", "/usr", 0x4000), "unknown flags 0x4000"),
        (("/usr", "/usr", -1), "unknown flags"),
        (("/u\0", "/usr"), "bind:"),
    ],
)
def test_invalid_binds_are_rejected_at_construction(args: tuple[object, ...], needle: str) -> None:
    with pytest.raises(OpError) as info:
        Bind(*args)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_equality_is_over_user_fields_only() -> None:
    a = Bind("/usr", "/usr", BIND_WRITABLE)
    b = Bind("/usr", "/usr", BIND_WRITABLE)
    b.source_final = "/nix/store/usr"
    assert a == b
    assert a != Bind("/usr", "/usr")
    assert a != Bind("/usr", "/usr2", BIND_WRITABLE)
    assert a != Bind("/usr2", "/usr", BIND_WRITABLE)
    assert Ops().bind("/usr", "/usr", BIND_WRITABLE) == [a]


@pytest.mark.parametrize(
    ("op", "text"),
    [
        (Bind("/usr", "/usr"), '"/usr" flags 0x0'),
        (Bind("/bin/", "/bin"), '"/bin/" on "/bin" flags 0x0'),
        (
            Bind("/etc", "/etc/.host/x", BIND_WRITABLE | BIND_DEVICE),
            '"/etc" on "/etc/.host/x" flags 0x6',
        ),
    ],
)
def test_str(op: Bind, text: str) -> None:
    assert str(op) == text
    assert Bind.PREFIX == ""  # bind prints its own "mounting" line


def test_wire_round_trip() -> None:
    op = Bind("/a b", "/c", BIND_OPTIONAL | BIND_DEVICE)
    op.source_final = "/resolved"
    back = REGISTRY[op.TAG].from_wire(op.to_wire())
    assert back == op
    assert isinstance(back, Bind)
    assert back.source_final is None  # derived state never travels


def test_target_is_normalised_and_the_source_is_not() -> None:
    """The target is a container path, settled when the op is built; the source is the
    user's host path and keeps following the host's links as written."""
    op = Bind("/srv/../data", "/mnt/./x//y/../z/")
    assert (op.source, op.target) == ("/srv/../data", "/mnt/x/z")
    assert str(op) == '"/srv/../data" on "/mnt/x/z" flags 0x0'
    assert op.to_wire()["target"] == "/mnt/x/z"
    back = Bind.from_wire({"source": "/a", "target": "/b/../c/", "flags": 0})
    assert back.target == "/c"
    assert back == Bind("/a", "/c")
    assert str(Bind("/usr", "/usr/")) == '"/usr" flags 0x0'


@pytest.mark.parametrize("target", ["/..", "/a/../../b", "/../host/tmp"])
def test_target_above_the_root_is_refused(target: str) -> None:
    with pytest.raises(OpError, match=r"^bind: path .* climbs above /$"):
        Bind("/a", target)
    with pytest.raises(OpError, match=r"^bind: "):
        Bind.from_wire({"source": "/a", "target": target, "flags": 0})


def test_from_wire_validates() -> None:
    with pytest.raises(OpError):
        Bind.from_wire({"source": "/a", "target": "/b", "flags": BIND_OPTIONAL | BIND_ENSURE})
