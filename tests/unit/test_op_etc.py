"""AutoEtc op: relative links into the bound host /etc, once per container."""

from __future__ import annotations

import errno

import pytest

from hakurei.errors import OpError, OpRepeatError
from hakurei.ops import AutoEtc, State

from fakekernel import FakeKernel, call


def test_links_every_entry_but_the_skipped_ones() -> None:
    k = FakeKernel(
        [
            call("makedirs", "/sysroot/etc", 0o755),
            call(
                "listdir",
                "/sysroot/etc/.host/c6e0b4a1",
                ret=[".host", "group", "hosts", "ld.so.cache", "mtab", "passwd", "ssl"],
            ),
            call("symlink", ".host/c6e0b4a1/hosts", "/sysroot/etc/hosts"),
            call("symlink", ".host/c6e0b4a1/ld.so.cache", "/sysroot/etc/ld.so.cache"),
            call("symlink", "/proc/mounts", "/sysroot/etc/mtab"),
            call("symlink", ".host/c6e0b4a1/ssl", "/sysroot/etc/ssl"),
        ]
    )
    AutoEtc("c6e0b4a1").apply(State(k))
    k.done()


def test_empty_host_etc_links_nothing() -> None:
    k = FakeKernel(
        [
            call("makedirs", "/sysroot/etc", 0o755),
            call("listdir", "/sysroot/etc/.host/host", ret=[]),
        ]
    )
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
        [
            call("makedirs", "/sysroot/etc", 0o755),
            call("listdir", "/sysroot/etc/.host/a", ret=["hosts"]),
            call("symlink", ".host/a/hosts", "/sysroot/etc/hosts"),
        ]
    )
    st = State(k)
    AutoEtc("a").apply(st)
    with pytest.raises(OpRepeatError):
        AutoEtc("b").apply(st)
    k.done()


@pytest.mark.parametrize("fail_at", range(4))
def test_errors_propagate(fail_at: int) -> None:
    calls = [
        call("makedirs", "/sysroot/etc", 0o755),
        call("listdir", "/sysroot/etc/.host/host", ret=["hosts", "mtab"]),
        call("symlink", ".host/host/hosts", "/sysroot/etc/hosts"),
        call("symlink", "/proc/mounts", "/sysroot/etc/mtab"),
    ]
    err = OSError(errno.EEXIST, "file exists")
    calls[fail_at] = call(calls[fail_at].name, *calls[fail_at].args, err=err)
    k = FakeKernel(calls[: fail_at + 1])
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
