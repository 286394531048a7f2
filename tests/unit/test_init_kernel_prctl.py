"""The named prctl methods of the real ``Kernel`` issue the prctl(2) numbers the kernel defines.

The fake-kernel tests see ``set_no_new_privs()``, not ``prctl(38, 1)``, so the
numbers are pinned here, once, as literals from <linux/prctl.h> (not computed
the way the code computes them), with libc's ``prctl`` replaced by a
recorder (every option goes through it: python-prctl is not used).  That the
settings really hold inside a container (NoNewPrivs, CapAmb, no core dumps) is
proven by the integration tests.
"""

from __future__ import annotations

import ctypes
import errno
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from hakurei.init import kernel as kmod
from hakurei.init.kernel import Kernel

PR_SET_NAME = 15


class Recorder:
    """Stands in for libc's ``prctl``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail_errno = 0

    def libc(self, *args: int) -> int:  # prctl(option, arg2, arg3, arg4, arg5)
        if args[0] == PR_SET_NAME:  # arg2 points at the name: read it while it is alive
            args = (args[0], ctypes.string_at(args[1]), *args[2:])  # type: ignore[assignment]
        self.calls.append(("libc", args))
        if self.fail_errno:
            ctypes.set_errno(self.fail_errno)
            return -1
        return 0


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    r = Recorder()
    monkeypatch.setattr(kmod, "_prctl_raw", r.libc)
    return r


CASES: list[tuple[str, Callable[[Kernel], None], tuple[str, tuple[Any, ...]]]] = [
    ("set_pdeathsig", lambda k: k.set_pdeathsig(9), ("libc", (1, 9, 0, 0, 0))),
    ("set_dumpable", lambda k: k.set_dumpable(False), ("libc", (4, 0, 0, 0, 0))),
    ("set_name", lambda k: k.set_name("init"), ("libc", (15, b"init", 0, 0, 0))),
    ("capbset_drop", lambda k: k.capbset_drop(40), ("libc", (24, 40, 0, 0, 0))),
    ("set_no_new_privs", lambda k: k.set_no_new_privs(), ("libc", (38, 1, 0, 0, 0))),
    ("ambient_clear_all", lambda k: k.ambient_clear_all(), ("libc", (47, 4, 0, 0, 0))),
    ("ambient_raise", lambda k: k.ambient_raise(21), ("libc", (47, 2, 21, 0, 0))),
    ("set_ptracer", lambda k: k.set_ptracer(0), ("libc", (0x59616D61, 0, 0, 0, 0))),
]


@pytest.mark.parametrize(("name", "use", "issued"), CASES, ids=[c[0] for c in CASES])
def test_each_named_prctl_issues_its_option_and_argument(
    rec: Recorder, name: str, use: Callable[[Kernel], None], issued: tuple[str, tuple[Any, ...]]
) -> None:
    use(Kernel())
    assert rec.calls == [issued]


def test_every_prctl_method_is_pinned() -> None:
    """A new prctl method on the seam gets its numbers pinned above too."""
    prctl_methods = {
        name
        for name, fn in inspect.getmembers(Kernel, inspect.isfunction)
        if "_prctl" in inspect.getsource(fn)
    }
    assert prctl_methods == {name for name, _, _ in CASES} | {"seccomp_load_prctl"}


def test_a_callers_seccomp_program_loads_through_prctl_set_seccomp_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PR_SET_SECCOMP (22), SECCOMP_MODE_FILTER (2), a sock_fprog of the program's length."""
    seen: list[tuple[tuple[int, ...], int, bytes]] = []

    def libc(*args: int) -> int:  # read the sock_fprog while it is alive
        fprog = kmod._SockFprog.from_address(args[2])
        seen.append((args, fprog.len, ctypes.string_at(fprog.filter, 8 * fprog.len)))
        return 0

    monkeypatch.setattr(kmod, "_prctl_raw", libc)
    program = bytes(range(16))  # two instructions
    Kernel().seccomp_load_prctl(program)
    ((args, length, data),) = seen
    assert (args[:2], args[3:], length, data) == ((22, 2), (0, 0), 2, program)


def test_a_long_name_is_cut_to_the_15_bytes_the_kernel_keeps(rec: Recorder) -> None:
    Kernel().set_name("hakurei-shim-0123456789")
    assert rec.calls == [("libc", (15, b"hakurei-shim-01", 0, 0, 0))]


def test_a_refused_libc_prctl_raises_oserror_naming_prctl(rec: Recorder) -> None:
    """init's verbose Yama line reads ``prctl: invalid argument``."""
    rec.fail_errno = errno.EINVAL
    with pytest.raises(OSError) as e:
        Kernel().set_ptracer(0)
    assert (e.value.errno, e.value.filename) == (errno.EINVAL, "prctl")
