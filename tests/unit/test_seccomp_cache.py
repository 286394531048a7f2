"""The compiled filter is kept in memory only: nothing in the user's directories decides it.

A file in the user's directories is a file any container with them bound
writable can rewrite; so the program is compiled in every process that needs
it, fast enough that no disk cache is worth that risk (bench/README.md).  The
default settings' programs ship compiled in the package itself, like its code
(test_seccomp_prebuilt.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakurei import seccomp as sc
from hakurei.seccomp import cache


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    sc.cache_clear()
    yield
    sc.cache_clear()


def strict(flags: int = 0) -> tuple[bytes | None, int]:
    return sc.filter_for(presets=sc.STRICT, flags=flags, rules=None, retain_session=True)


def reference(flags: int = 0) -> bytes:
    return sc.compile_bpf(sc.preset(sc.STRICT, flags), flags)


def test_a_second_call_in_the_process_returns_the_same_program() -> None:
    first, n = strict()
    assert (first, n) == (reference(), 73)
    assert strict()[0] is first
    sc.cache_clear()
    again = strict()[0]
    assert again == first and again is not first


def test_every_option_that_changes_the_program_is_part_of_the_key() -> None:
    programs = {
        strict()[0],
        strict(sc.ALLOW_CAN)[0],
        strict(sc.ALLOW_IO_URING)[0],
        sc.filter_for(presets=sc.EXT, flags=0, retain_session=True)[0],
        sc.filter_for(presets=sc.EXT, flags=0, retain_session=False)[0],  # + deny-tty
        sc.filter_for(presets=0, flags=0, rules=[sc.Rule("setuid", sc.EPERM)])[0],
        sc.filter_for(presets=0, flags=0, rules=[sc.Rule("setgid", sc.EPERM)])[0],
    }
    assert len(programs) == 7
    assert strict(sc.ALLOW_IO_URING) == (reference(sc.ALLOW_IO_URING), 73)


SCRIPT = """
import sys
from hakurei import seccomp
bpf, n = seccomp.filter_for(presets=seccomp.STRICT, flags=0, rules=None, retain_session=True)
slow = sorted({"pyseccomp", "ctypes.util", "subprocess"} & set(sys.modules))
sys.stdout.write(f"{','.join(slow) or '-'} {n} {bpf.hex()}")
"""


def test_a_fresh_process_compiles_without_reading_or_writing_the_user_s_directories(
    tmp_path: Path,
) -> None:
    """Old cache entries, FIFOs and junk where a cache used to be are never opened."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    for d in (home / ".cache" / "hakurei", cache / "hakurei"):
        d.mkdir(parents=True)
        os.mkfifo(d / "fifo")
        (d / "seccomp-0000000000000000.bpf").write_bytes(b"HKSCMP\0\1" + bytes(64))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(cache)}
    out = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT], env=env, capture_output=True, timeout=60, check=True
    )
    slow, n, bpf = out.stdout.decode().split()
    # No ldconfig run: pyseccomp's find_library would import ctypes.util and subprocess.
    assert (slow, n, bytes.fromhex(bpf)) == ("-", "73", reference())
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_disabled_filter_compiles_nothing() -> None:
    assert sc.filter_for(presets=sc.STRICT, flags=0, disable=True) == (None, 0)
    assert cache._MEMORY == {}
