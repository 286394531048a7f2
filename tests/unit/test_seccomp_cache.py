"""The compiled-filter cache: a second start never compiles nor imports pyseccomp."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakurei import seccomp as sc


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache home and an empty in-memory cache; yields hakurei's cache dir."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    sc.cache_clear()
    yield tmp_path / "xdg" / "hakurei"
    sc.cache_clear()


def strict() -> tuple[bytes | None, int]:
    return sc.filter_for(presets=sc.STRICT, flags=0, rules=None, retain_session=True)


def entries(d: Path) -> list[Path]:
    return sorted(d.iterdir()) if d.exists() else []


def reference() -> bytes:
    return sc.compile_bpf(sc.preset(sc.STRICT, 0), 0)


def test_first_call_compiles_and_writes_one_private_entry(cache: Path) -> None:
    bpf, n = strict()
    assert (bpf, n) == (reference(), 73)
    (entry,) = entries(cache)
    assert entry.name.startswith("seccomp-") and entry.name.endswith(".bpf")
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_memory_hit_returns_the_same_object_without_reading_disk(cache: Path) -> None:
    first, _ = strict()
    for e in entries(cache):
        e.unlink()
    second, _ = strict()
    assert second is first
    assert entries(cache) == []


def test_disk_hit_reads_the_entry(cache: Path) -> None:
    strict()
    sc.cache_clear()
    (entry,) = entries(cache)
    # Prove the bytes come from the file: an intact entry for a different program.
    fake = bytes(range(8)) * 4
    entry.write_bytes(
        sc._pack(sc._key(sc.STRICT | sc.DENY_TTY, 0, sc.preset(sc.STRICT, 0)), fake, 5)
    )
    assert strict() == (fake, 5)


SCRIPT = """
import sys
from hakurei import seccomp
bpf, n = seccomp.filter_for(presets=seccomp.STRICT, flags=0, rules=None, retain_session=False)
sys.stdout.write(f"{'pyseccomp' in sys.modules} {n} {bpf.hex()}")
"""


def test_second_process_never_imports_pyseccomp(cache: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache.parent)}

    def run() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-I", "-c", SCRIPT], env=env, capture_output=True, check=True
        )
        return out.stdout.decode().split()

    imported, n, bpf = run()
    assert (imported, n, bytes.fromhex(bpf)) == ("True", "73", reference())
    imported, n, bpf = run()
    assert (imported, n, bytes.fromhex(bpf)) == ("False", "73", reference())


@pytest.mark.parametrize(
    "damage",
    [
        "empty",
        "truncated",
        "magic",
        "checksum",
        "length not a multiple of 8",
        "other key",
        "trailing junk",
    ],
)
def test_broken_entry_is_ignored_and_rewritten(cache: Path, damage: str) -> None:
    strict()
    sc.cache_clear()
    (entry,) = entries(cache)
    good = entry.read_bytes()
    key = sc._key(sc.STRICT | sc.DENY_TTY, 0, sc.preset(sc.STRICT, 0))
    bad = {
        "empty": b"",
        "truncated": good[:-8],
        "magic": b"X" + good[1:],
        "checksum": good[:-1] + bytes([good[-1] ^ 1]),
        "length not a multiple of 8": sc._pack(key, b"\0" * 12, 73),
        "other key": sc._pack(key.replace("presets 0xf", "presets 0x1"), b"\0" * 8, 1),
        "trailing junk": good + b"\0" * 8,
    }[damage]
    entry.write_bytes(bad)
    assert strict() == (reference(), 73)
    assert entry.read_bytes() == good
    assert [e.name for e in entries(cache)] == [entry.name]  # no temporary files left


def test_key_covers_libseccomp_version_presets_flags_and_rules(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict()
    sc.filter_for(presets=sc.STRICT, flags=sc.ALLOW_CAN, rules=None, retain_session=True)
    sc.filter_for(presets=sc.EXT, flags=0, rules=None, retain_session=True)
    sc.filter_for(presets=sc.STRICT, flags=0, rules=[sc.Rule("setuid", 1)], retain_session=True)
    sc.filter_for(presets=sc.STRICT, flags=0, rules=[sc.Rule("setgid", 1)], retain_session=True)
    assert len(entries(cache)) == 5
    key = sc._key(sc.STRICT, 0, sc.preset(sc.STRICT, 0))
    assert f"libseccomp {sc.libseccomp_version()}\n" in key
    monkeypatch.setattr(sc, "libseccomp_version", lambda: "9.9.9")
    sc.cache_clear()
    strict()
    assert len(entries(cache)) == 6


def test_unwritable_cache_is_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    sc.cache_clear()
    assert strict() == (reference(), 73)
    sc.cache_clear()


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    monkeypatch.setenv("HOME", "/home/u")
    assert sc.cache_dir() == "/x/cache/hakurei"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # the spec says: ignore it
    assert sc.cache_dir() == "/home/u/.cache/hakurei"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert sc.cache_dir() == "/home/u/.cache/hakurei"
    monkeypatch.delenv("HOME")
    assert sc.cache_dir() is None


def test_without_any_cache_dir_it_still_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("HOME", raising=False)
    sc.cache_clear()
    assert strict() == (reference(), 73)
    sc.cache_clear()


def test_disabled_filter_writes_nothing(cache: Path) -> None:
    assert sc.filter_for(presets=sc.STRICT, flags=0, disable=True) == (None, 0)
    assert entries(cache) == []
