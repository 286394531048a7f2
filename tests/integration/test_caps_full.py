"""Every capability set of PID 1 and of the program, all 64 bits, as the kernel prints them.

``/proc/PID/status`` shows each of CapInh, CapPrm, CapEff, CapBnd and CapAmb
as 16 hex digits; the expected values are those literal strings, so a
capability above bit 31 (the kernel has them up to ``cap_last_cap``, 40 on
current kernels) left in any set fails the comparison.
"""

from __future__ import annotations

from conftest import ok, sh

SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
NONE = "0000000000000000"
SYS_ADMIN = "0000000000200000"  # bit 21

#: both processes' capability lines in one container: the program's, then PID 1's
SCRIPT = "grep ^Cap /proc/self/status; echo --; grep ^Cap /proc/1/status"


def sets_of(text: str) -> dict[str, str]:
    return dict(line.split(":\t") for line in text.splitlines())


def program_and_init(**kw: object) -> tuple[dict[str, str], dict[str, str]]:
    program, _, init = ok(sh(SCRIPT, **kw)).partition("--\n")
    return sets_of(program), sets_of(init)


def test_the_kernel_has_capabilities_above_bit_31_and_prints_them() -> None:
    # The witness that the comparisons below can see bits >= 32: this kernel
    # has them, and an ordinary process outside a container holds them in its
    # bounding set, printed in the same 16-digit field.
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    assert last >= 32
    with open("/proc/self/status") as f:
        mine = sets_of("".join(line for line in f if line.startswith("Cap")))
    assert len(mine["CapBnd"]) == 16
    above_31 = int(mine["CapBnd"], 16) >> 32
    assert above_31 == (1 << (last - 31)) - 1, mine["CapBnd"]


def test_program_and_init_hold_no_capability_in_any_set() -> None:
    program, init = program_and_init()
    assert program == dict.fromkeys(SETS, NONE)
    assert init == dict.fromkeys(SETS, NONE)


def test_privileged_program_and_init_hold_only_cap_sys_admin() -> None:
    program, init = program_and_init(privileged=True)
    # The program gets CAP_SYS_ADMIN through the ambient set, so in every set.
    assert program == dict.fromkeys(SETS, SYS_ADMIN)
    # Init held it only to pass it on, and lets go once the program runs; its
    # bounding set (which needs CAP_SETPCAP to shrink, and bounds no exec of init's) stays.
    assert init == {
        "CapInh": NONE,
        "CapPrm": NONE,
        "CapEff": NONE,
        "CapBnd": SYS_ADMIN,
        "CapAmb": NONE,
    }
