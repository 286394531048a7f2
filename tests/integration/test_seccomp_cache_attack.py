"""No file a container can write decides the next container's syscall filter (issue 6 item 4).

A confined program that has the user's ``$HOME``, ``$XDG_CACHE_HOME`` and
``$XDG_RUNTIME_DIR`` bound writable is the attacker.  Until hakurei stopped
keeping a compiled filter on disk, it could rewrite the cache entry of the
default configuration with an allow-everything program, with the key and CRC
recomputed exactly as hakurei computed them (they authenticate nothing), and
the user's next default ``hakurei exec`` loaded it; a FIFO in its place hung
every later start.  Here the attacker does each of those things to every file
hakurei kept in those directories and plants the entry the old reader would
have accepted; the next default ``hakurei exec``, run as the user with the
same environment, must still deny a user namespace and TIOCSTI, say so with
``-v``, print the real program with ``hakurei seccomp``, and not hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from hakurei import seccomp as sc
from hakurei.ops import BIND_WRITABLE

from conftest import PY, base_ops, run

#: Every start here must end well within this; a FIFO read by the parent would hang it.
TIMEOUT = 30

#: What the old reader accepted: magic, u32 key length, u32 BPF length, u32 rule count,
#: u32 CRC-32 of (those three fields + key + BPF), key, BPF; named after CRC-32 and Adler-32
#: of the key.  Spelled out here because it is the attacker's knowledge, not hakurei's.
OLD_MAGIC = b"HKSCMP\x00\x01"
#: One BPF instruction: ``ret SECCOMP_RET_ALLOW``.
ALLOW_EVERYTHING = (0x06).to_bytes(2, "little") + b"\0\0" + (0x7FFF0000).to_bytes(4, "little")


def old_entry(presets: int, flags: int, rules: list[sc.Rule]) -> tuple[str, bytes]:
    """(file name, contents) of an old-format cache entry holding ALLOW_EVERYTHING."""
    lines = []
    for r in rules:
        if r.arg is None:
            lines.append(f"{r.syscall} {r.errno}\n")
        else:
            a = r.arg
            lines.append(f"{r.syscall} {r.errno} {a.index}:{a.op}:{a.a:#x}:{a.b:#x}\n")
    key = (
        f"hakurei seccomp 1\narch {os.uname().machine}\nlibseccomp {sc.libseccomp_version()}\n"
        f"presets {presets:#x}\nflags {flags:#x}\n" + "".join(lines)
    ).encode()
    bpf = ALLOW_EVERYTHING
    body = b"".join(n.to_bytes(4, "little") for n in (len(key), len(bpf), len(rules)))
    crc = zlib.crc32(body + key + bpf)
    name = f"seccomp-{zlib.crc32(key):08x}{zlib.adler32(key):08x}.bpf"
    return name, OLD_MAGIC + body + crc.to_bytes(4, "little") + key + bpf


#: Runs inside the attacking container: argv = mode, entry name, entry hex, dirs...
ATTACK = r"""
import os, sys
mode, name, data = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
dirs = sys.argv[4:]
home, cache, runtime = dirs
planted = [os.path.join(cache, "hakurei", name), os.path.join(home, ".cache", "hakurei", name)]
kept = []
for d in dirs:
    for top, subdirs, files in os.walk(d):
        kept += [os.path.join(top, f) for f in files]
for path in sorted(set(kept + planted)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode == "rewrite":
        with open(path, "wb") as f:
            f.write(data)
    elif mode == "truncate":
        open(path, "wb").close()
    elif mode == "fifo":
        if os.path.lexists(path):
            os.unlink(path)
        os.mkfifo(path, 0o600)
    elif mode == "delete":
        if os.path.lexists(path):
            os.unlink(path)
    else:
        sys.exit("unknown mode " + mode)
print(len(kept), "kept", len(planted), "planted")
"""

#: Runs inside the victim: what a confined program can do with the filter it got.
VICTIM = r"""
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
def call(r):
    return "ok" if r == 0 else errno.errorcode[ctypes.get_errno()]
c = ctypes.c_char(b"x")
out = {
    "unshare(CLONE_NEWUSER)": call(libc.unshare(0x10000000)),
    "ioctl(TIOCSTI)": call(libc.ioctl(0, 0x5412, ctypes.byref(c))),
}
print(json.dumps(out, sort_keys=True))
"""

DENIED = {"unshare(CLONE_NEWUSER)": "EPERM", "ioctl(TIOCSTI)": "EPERM"}


def user_dirs(base: Path) -> dict[str, str]:
    env = {}
    for var, sub in (("HOME", "home"), ("XDG_CACHE_HOME", "cache"), ("XDG_RUNTIME_DIR", "run")):
        d = base / sub
        d.mkdir(mode=0o700, parents=True)
        env[var] = str(d)
    return env


def hakurei(env: dict[str, str], *args: str, text: bool = True) -> subprocess.CompletedProcess[Any]:
    return subprocess.run(
        [sys.executable, "-m", "hakurei", *args],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=text,
        timeout=TIMEOUT,
        check=False,
    )


def victim(env: dict[str, str], *options: str) -> tuple[dict[str, str], str]:
    r = hakurei(env, "exec", "-v", *options, "--", PY, "-I", "-S", "-c", VICTIM)
    assert r.returncode == 0, r.stderr
    result: dict[str, str] = json.loads(r.stdout)
    return result, r.stderr


def attack(env: dict[str, str], mode: str) -> None:
    # The entry the old cache would have held for `hakurei exec`'s default filter.
    name, data = old_entry(sc.EVERYDAY, 0, sc.preset(sc.EVERYDAY, 0))
    targets = ["/attack/home", "/attack/cache", "/attack/run"]
    ops = base_ops()
    for var, target in zip(("HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"), targets, strict=True):
        ops.bind(env[var], target, BIND_WRITABLE)
    r = run([PY, "-I", "-S", "-c", ATTACK, mode, name, data.hex(), *targets], ops)
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(4 * TIMEOUT)
@pytest.mark.parametrize("mode", ["rewrite", "truncate", "fifo", "delete"])
def test_a_container_cannot_weaken_the_next_default_filter(tmp_path: Path, mode: str) -> None:
    pristine = user_dirs(tmp_path / "pristine")
    env = user_dirs(tmp_path / "attacked")
    # The user runs containers first, so hakurei keeps whatever it keeps.
    assert victim(env)[0] == DENIED
    attack(env, mode)
    result, log = victim(env)
    assert result == DENIED
    assert f"{len(sc.preset(sc.EVERYDAY, 0))} filter rules loaded" in log
    shown = hakurei(env, "seccomp", "--format", "bpf", text=False)
    want = hakurei(pristine, "seccomp", "--format", "bpf", text=False)
    assert shown.returncode == want.returncode == 0, shown.stderr
    assert shown.stdout == want.stdout != ALLOW_EVERYTHING


def test_the_victim_probe_sees_an_unfiltered_container(tmp_path: Path) -> None:
    """The same probe without a filter: both calls get past seccomp, so the test can fail."""
    result, log = victim(user_dirs(tmp_path), "--no-seccomp")
    assert result == {"unshare(CLONE_NEWUSER)": "ok", "ioctl(TIOCSTI)": "ENOTTY"}
    assert "filter rules loaded" not in log
