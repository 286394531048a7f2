"""The default settings' programs, compiled ahead, are exactly what libseccomp compiles here.

``hakurei/seccomp/prebuilt.py`` is generated (scripts/seccomp-prebuilt.py)
and used only on the machine and libseccomp it names, which CI is.  There a
stale entry (a rule or preset changed, the table not regenerated) fails the
first test; anywhere else the table must be unused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from hakurei import seccomp as sc
from hakurei import std
from hakurei.seccomp import cache, prebuilt

HERE = (os.uname().machine, sc.libseccomp_version()) == (prebuilt.MACHINE, prebuilt.LIBSECCOMP)


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    sc.cache_clear()
    yield
    sc.cache_clear()


@pytest.mark.parametrize("key", sorted(prebuilt.PROGRAMS), ids=str)
def test_each_program_compiled_ahead_is_the_one_libseccomp_compiles_here(
    key: tuple[int, int, bool],
) -> None:
    presets, flags, retain = key
    compiled = cache.compile_for(presets=presets, flags=flags, rules=None, retain_session=retain)
    if HERE:
        assert prebuilt.PROGRAMS[key] == compiled, "rerun scripts/seccomp-prebuilt.py"
        assert sc.filter_for(presets=presets, flags=flags, retain_session=retain) == compiled
    else:  # another platform compiles, whatever the table holds
        assert cache.prebuilt(presets, flags, retain) is None


def test_the_table_holds_the_defaults_of_exec_the_launcher_and_the_library() -> None:
    assert {(std.EVERYDAY, 0, False), (std.EVERYDAY, 0, True), (0, 0, False)} <= set(
        prebuilt.PROGRAMS
    )


SCRIPT = """
import sys
from hakurei import seccomp, std
got = seccomp.filter_for(presets=std.EVERYDAY, flags={flags}, retain_session=False)
loaded = sorted(m for m in sys.modules if m.startswith("hakurei.seccomp."))
sys.stdout.write(" ".join(loaded))
"""


def loaded_for(flags: int) -> list[str]:
    """The seccomp modules a fresh process loads to get exec's default program with ``flags``."""
    out = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT.format(flags=flags)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return out.stdout.decode().split()


def test_a_start_with_the_default_filter_loads_neither_rules_nor_compiler() -> None:
    expected = ["hakurei.seccomp.cache", "hakurei.seccomp.library", "hakurei.seccomp.prebuilt"]
    if HERE:
        assert loaded_for(0) == expected
    else:
        assert "hakurei.seccomp.compile" in loaded_for(0)


def test_any_other_setting_is_compiled_as_before() -> None:
    assert "hakurei.seccomp.compile" in loaded_for(std.ALLOW_CAN)
    got = sc.filter_for(presets=std.EVERYDAY, flags=std.ALLOW_CAN)
    assert got == cache.compile_for(
        presets=std.EVERYDAY, flags=std.ALLOW_CAN, rules=None, retain_session=False
    )
    assert got[0] != prebuilt.PROGRAMS[(std.EVERYDAY, 0, False)][0]


def test_custom_rules_never_use_the_table() -> None:
    rules = [sc.Rule("setuid", sc.EPERM)]
    got = sc.filter_for(presets=std.EVERYDAY, flags=0, rules=rules)
    assert got == (sc.compile_bpf(rules, 0), 1)
