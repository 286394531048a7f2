"""The landlock ABI is pinned: the ruleset attribute is 24 bytes and 24 is what is passed.

``landlock_create_ruleset(2)`` takes the attribute struct and its size; the
kernel rejects a size smaller than the fields it knows (E2BIG for non-zero
bytes past what it knows).  ``struct landlock_ruleset_attr`` is three u64s
since ABI 6 (``handled_access_fs``, ``handled_access_net``, ``scoped``): a
field dropped from the ctypes struct, or a size computed from a different
struct, would make the kernel read ``scoped`` as garbage or refuse the call.
These tests need no kernel: the libc ``syscall`` the seam calls is replaced by
a recorder.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from typing import Any

import pytest

from hakurei.init import kernel as kmod
from hakurei.init.kernel import (
    LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
    LANDLOCK_SCOPE_SIGNAL,
    SYS_LANDLOCK_CREATE_RULESET,
    SYS_LANDLOCK_RESTRICT_SELF,
    Kernel,
)


def test_ruleset_attr_is_three_u64_fields_of_24_bytes() -> None:
    attr = kmod._LandlockAttr
    assert ctypes.sizeof(attr) == 24
    assert [(name, ctypes.sizeof(t)) for name, t in attr._fields_] == [
        ("handled_access_fs", 8),
        ("handled_access_net", 8),
        ("scoped", 8),
    ]
    assert attr.scoped.offset == 16


class Recorder:
    """Stands in for libc ``syscall``: records each call, returns a real fd for create."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, tuple[Any, ...]]] = []
        self.scoped: list[tuple[int, int, int]] = []
        self.fds: list[int] = []

    def __call__(self, nr: int, *args: Any) -> int:
        self.calls.append((nr, args))
        if nr == SYS_LANDLOCK_CREATE_RULESET:
            # args[0] is ctypes.byref(attr): read the struct the kernel would read.
            attr = args[0]._obj
            self.scoped.append((attr.handled_access_fs, attr.handled_access_net, attr.scoped))
            fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            self.fds.append(fd)
            return fd
        return 0


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    rec = Recorder()
    monkeypatch.setattr(kmod, "_syscall", rec)
    yield rec


@pytest.mark.parametrize(
    "scoped",
    [
        LANDLOCK_SCOPE_SIGNAL,
        LANDLOCK_SCOPE_SIGNAL | LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
    ],
)
def test_landlock_scope_passes_size_24_and_only_the_scopes(recorder: Recorder, scoped: int) -> None:
    Kernel().landlock_scope(scoped)

    (create_nr, create_args), (restrict_nr, restrict_args) = recorder.calls
    assert create_nr == SYS_LANDLOCK_CREATE_RULESET
    assert create_args[1:] == (24, 0)  # size, flags
    assert recorder.scoped == [(0, 0, scoped)]
    assert restrict_nr == SYS_LANDLOCK_RESTRICT_SELF
    assert restrict_args == (recorder.fds[0], 0)
    # The ruleset fd is closed once the domain is enforced.
    with pytest.raises(OSError):
        os.fstat(recorder.fds[0])


def test_scope_bits_are_the_uapi_values() -> None:
    # include/uapi/linux/landlock.h (Linux 6.12, ABI 6)
    assert LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET == 1 << 0
    assert LANDLOCK_SCOPE_SIGNAL == 1 << 1
    assert (SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_RESTRICT_SELF) == (444, 446)
