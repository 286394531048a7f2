"""Capability bits 32 and up: dropped from the bounding set, and carried by capset.

Linux has capabilities above bit 31 (CAP_MAC_OVERRIDE is 32, CAP_CHECKPOINT_RESTORE
40), which live in the second 32-bit word of every capability ABI.  A loop
that stops one short of ``cap_last_cap``, or a capset that writes only the
first word, leaves exactly those behind.  The expected lists here are
literal, not computed the way the code computes them.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from hakurei.init import kernel as kmod
from hakurei.init.init import Init
from hakurei.init.kernel import Kernel

import records

#: 0..40 written out: what Debian 12's and newer kernels report as cap_last_cap = 40
EVERY_CAP_TO_40 = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
    20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    32, 33, 34, 35, 36, 37, 38, 39, 40,
]  # fmt: skip


class PrivilegeKernel:
    """Records the calls of ``Init.privileges``; nothing else is expected of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def ambient_clear_all(self) -> None:
        self._record("ambient_clear_all")

    def ambient_raise(self, cap: int) -> None:
        self._record("ambient_raise", cap)

    def set_no_new_privs(self) -> None:
        self._record("set_no_new_privs")

    def capbset_drop(self, cap: int) -> None:
        self._record("capbset_drop", cap)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._record("capset", effective, permitted, inheritable)

    def landlock_abi(self) -> int:
        return 6

    def landlock_scope(self, scoped: int) -> None:
        self._record("landlock_scope", scoped)

    def seccomp_load(self, bpf: bytes) -> None:
        self._record("seccomp_load", bpf)


def privileges(last_cap: int, **fields: Any) -> list[tuple[str, tuple[Any, ...]]]:
    k = PrivilegeKernel()
    Init(k, records.make_setup(**fields), []).privileges(last_cap)  # type: ignore[arg-type]
    return k.calls


def test_every_cap_up_to_cap_last_cap_40_leaves_the_bounding_set() -> None:
    calls = privileges(40)
    assert [args[0] for name, args in calls if name == "capbset_drop"] == EVERY_CAP_TO_40
    assert [args for name, args in calls if name == "capset"] == [(0, 0, 0)]


def test_privileged_drops_every_cap_to_40_but_cap_sys_admin() -> None:
    calls = privileges(40, privileged=True)
    drops = [args[0] for name, args in calls if name == "capbset_drop"]
    assert drops == [c for c in EVERY_CAP_TO_40 if c != 21]
    assert 40 in drops and 32 in drops
    # The last capset leaves permitted and inheritable = CAP_SYS_ADMIN only.
    assert [args for name, args in calls if name == "capset"][-1] == (0, 0x200000, 0x200000)


def test_capset_carries_bits_above_31_in_the_second_word(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, list[tuple[int, int, int]]]] = []

    def fake_capset(hdr: Any, data: Any) -> int:
        header = hdr._obj
        seen.append((header.version, [(d.effective, d.permitted, d.inheritable) for d in data]))
        return 0

    monkeypatch.setattr(kmod, "_capset", fake_capset)
    Kernel().capset((1 << 40) | (1 << 21), 1 << 33, (1 << 32) | 1)
    assert seen == [
        (
            0x20080522,  # _LINUX_CAPABILITY_VERSION_3: two words per set
            [(1 << 21, 0, 1), (1 << 8, 1 << 1, 1)],
        )
    ]
    assert ctypes.sizeof(kmod._CapData) == 12
