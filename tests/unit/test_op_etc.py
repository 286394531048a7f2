"""AutoEtc op: relative links into the bound host /etc, once per container."""

from __future__ import annotations

import errno
import os

import pytest

from hakurei.errors import OpError, OpRepeatError
from hakurei.ops import AutoEtc, State
from hakurei.ops.base import SYSROOT

from fakekernel import Call, FakeKernel, call, failing

LISTABLE = os.O_RDONLY | os.O_DIRECTORY


def head(prefix: str, names: list[str]) -> list[Call]:
    """/etc made or found in the root (fd 3), the bound host /etc listed through fd 4."""
    return [
        call("mkdir_in", SYSROOT, "/etc", 0o755, 0o755, ret=3),
        call("open_in", SYSROOT, f"/etc/.host/{prefix}", LISTABLE, ret=4),
        call("listdir_fd", 4, ret=names),
        call("close", 4),
    ]


def test_links_every_entry_but_the_skipped_ones() -> None:
    k = FakeKernel(
        [
            *head("c6e0b4a1", [".host", "group", "hosts", "ld.so.cache", "mtab", "passwd", "ssl"]),
            call("symlinkat", ".host/c6e0b4a1/hosts", 3, "hosts"),
            call("symlinkat", ".host/c6e0b4a1/ld.so.cache", 3, "ld.so.cache"),
            call("symlinkat", "/proc/mounts", 3, "mtab"),
            call("symlinkat", ".host/c6e0b4a1/ssl", 3, "ssl"),
            call("close", 3),
        ]
    )
    AutoEtc("c6e0b4a1").apply(State(k))
    k.done()


def test_empty_host_etc_links_nothing() -> None:
    k = FakeKernel([*head("host", []), call("close", 3)])
    AutoEtc("host").apply(State(k))
    k.done()


def test_not_repeatable() -> None:
    st = State(FakeKernel([]))
    st.nonrepeatable.add("autoetc")
    with pytest.raises(OpRepeatError) as e:
        AutoEtc("host").apply(st)
    assert str(e.value) == "autoetc is not repeatable"


def test_second_instance_in_one_run_fails_before_any_call() -> None:
    k = FakeKernel(
        [*head("a", ["hosts"]), call("symlinkat", ".host/a/hosts", 3, "hosts"), call("close", 3)]
    )
    st = State(k)
    AutoEtc("a").apply(st)
    with pytest.raises(OpRepeatError):
        AutoEtc("b").apply(st)
    k.done()


CALLS = [
    *head("host", ["hosts", "mtab"]),
    call("symlinkat", ".host/host/hosts", 3, "hosts"),
    call("symlinkat", "/proc/mounts", 3, "mtab"),
    call("close", 3),
]


@pytest.mark.parametrize("fail_at", range(len(CALLS)))
def test_errors_propagate_and_close_every_fd(fail_at: int) -> None:
    err = OSError(errno.EEXIST, "file exists")
    k = FakeKernel(failing(CALLS, fail_at, err))
    with pytest.raises(OSError) as e:
        AutoEtc("host").apply(State(k))
    assert e.value is err
    k.done()


def test_validation() -> None:
    for bad in ("", ".", "..", "a/b", "/x"):
        with pytest.raises(OpError):
            AutoEtc(bad)
    with pytest.raises(OpError):
        AutoEtc("nul\0")
    with pytest.raises(OpError):
        AutoEtc(1)  # type: ignore[arg-type]
    assert AutoEtc.from_wire({"prefix": "host"}) == AutoEtc("host")
    with pytest.raises(OpError):
        AutoEtc.from_wire({"prefix": ".."})


def test_equality() -> None:
    assert AutoEtc("host") == AutoEtc("host")
    assert AutoEtc("host") != AutoEtc("other")


def test_text() -> None:
    assert AutoEtc.PREFIX == "setting up"
    assert str(AutoEtc("81ceabb30d37bbdb3868004629cb84e9")) == (
        "auto etc 81ceabb30d37bbdb3868004629cb84e9"
    )


def test_text_escapes_a_prefix_with_terminal_controls() -> None:
    """-v prints str(op): a library caller's prefix must not reach the terminal raw."""
    assert str(AutoEtc("x\x1b]0;pwned\x07")) == 'auto etc "x\\x1b]0;pwned\\a"'
