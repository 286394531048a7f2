"""The compiled filter on the real kernel, without a container.

Each test starts a fresh interpreter that sets no_new_privs, installs the BPF
program with the raw ``seccomp(2)`` call (``Kernel.seccomp_load``, as init
does) and execs ``seccomp_probe.py``, which inherits the filter the way the
initial process of a container does.  Every test also runs the same probe
without a filter and expects a different answer, so each can fail.  In the
root phase of the test command the probes run as root and again as the
ordinary user the test command created (``HAKUREI_TEST_USER``): every test
here runs in both phases.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from hakurei import seccomp as sc

# The project's CI runs on x86_64; int 0x80 and x32 are x86_64 ABIs.
assert platform.machine() == "x86_64", "these tests assert x86_64 ABIs"

LOADER = """
import os, sys
from hakurei.init.kernel import Kernel, PR_SET_NO_NEW_PRIVS
bpf = sys.stdin.buffer.read()
k = Kernel()
k.prctl(PR_SET_NO_NEW_PRIVS, 1)
if bpf:
    k.seccomp_load(bpf)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.execv(sys.argv[1], sys.argv[1:])
"""


def _users() -> list[Any]:
    """``self``, and as root also the test command's ordinary user, marked ``root``.

    The user comes from the environment the test command sets, never from a
    name that only exists on one machine; without it the test fails and says so.
    """
    if os.geteuid() != 0:
        return ["self"]
    other = os.environ.get("HAKUREI_TEST_USER", "")
    return [
        pytest.param("self", marks=pytest.mark.root),
        pytest.param(other, marks=pytest.mark.root, id="test-user"),
    ]


def _check_user(user: str) -> None:
    if user == "self":
        return
    if not user:
        pytest.fail("HAKUREI_TEST_USER is not set (scripts/test.sh sets it in the root phase)")
    try:
        pwd.getpwnam(user)
    except KeyError:
        pytest.fail(f"HAKUREI_TEST_USER={user!r} names no user on this machine")


USERS = _users()

NONE = None  # no filter at all: the inverse of every test


@pytest.fixture(scope="module")
def probe() -> Iterator[str]:
    """The probe where the test user can read it (tmp_path and root's TMPDIR are private)."""
    d = tempfile.mkdtemp(prefix="hk-seccomp-probe-", dir="/tmp")
    os.chmod(d, 0o755)
    dst = os.path.join(d, "seccomp_probe.py")
    shutil.copyfile(Path(__file__).with_name("seccomp_probe.py"), dst)
    os.chmod(dst, 0o644)
    yield dst
    shutil.rmtree(d)


_BPF: dict[tuple[int, int, tuple[sc.Rule, ...], bool], bytes] = {}


def bpf(
    presets: int = sc.STRICT,
    flags: int = 0,
    rules: Sequence[sc.Rule] = (),
    retain_session: bool = True,
) -> bytes:
    key = (presets, flags, tuple(rules), retain_session)
    if key not in _BPF:
        prog, _ = sc.filter_for(
            presets=presets, flags=flags, rules=list(rules), retain_session=retain_session
        )
        assert prog is not None
        _BPF[key] = prog
    return _BPF[key]


def run(probe: str, case: str, prog: bytes | None, user: str) -> subprocess.CompletedProcess[bytes]:
    _check_user(user)
    cmd = [sys.executable, "-I", "-c", LOADER, sys.executable, "-I", "-S", probe, case]
    if user != "self":
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, input=prog or b"", capture_output=True, timeout=60, cwd="/")


def killed_by_sigsys(r: subprocess.CompletedProcess[bytes], user: str) -> bool:
    """runuser reports a child killed by a signal as 128 + signal."""
    want = -signal.SIGSYS if user == "self" else 128 + signal.SIGSYS
    return r.returncode == want and r.stdout == b""


def probe_json(probe: str, case: str, prog: bytes | None, user: str) -> dict[str, Any]:
    r = run(probe, case, prog, user)
    assert r.returncode == 0, (r.returncode, r.stderr.decode())
    out: dict[str, Any] = json.loads(r.stdout)
    return out


# -- the witness: every rule's decision, nothing executed -----------------------------

ALLOWED = "ENOSYS"  # what the witness answers for a call the filter lets through
ALLOWED_FAMILIES = {0, 1, 2, 10, 16}


def expected(presets: int | None, flags: int = 0, rules: Sequence[sc.Rule] = ()) -> dict[str, str]:
    """What the witness case must report under a filter built from these options.

    The unconditional rules come from ``preset`` (pinned against the reference
    by the unit tests); the argument-dependent ones are spelled out here.
    """
    if presets is None:
        active: list[sc.Rule] = []
    elif rules:
        active = list(rules)
    else:
        active = sc.preset(presets, flags)
    if presets is not None:  # appended to every filter, spelled out here
        active += [sc.Rule("quotactl_fd", sc.EPERM)]
        if not flags & sc.ALLOW_IO_URING:
            active += [sc.Rule(n, sc.ENOSYS) for n in _IO_URING]
    plain = {r.syscall: errno.errorcode[r.errno] for r in active if r.arg is None}
    names = {r.syscall for r in active}
    exp = {n: plain.get(n, ALLOWED) for n in _PLAIN}
    for n in _EXECUTED:
        exp[n] = "ENOSYS" if n in plain else "!ENOSYS"
    tty = "EPERM" if "ioctl" in names else ALLOWED
    exp.update(
        {
            "clone(CLONE_NEWUSER)": "EPERM" if "clone" in names else ALLOWED,
            "clone(SIGCHLD)": ALLOWED,
            "ioctl(TIOCSTI)": tty,
            "ioctl(TIOCSTI|junk<<32)": tty,
            "ioctl(TIOCLINUX)": tty,
            "ioctl(TIOCLINUX|junk<<32)": tty,
            "ioctl(TCGETS)": ALLOWED,
        }
    )
    if "personality" in names:
        allowed = 8 if presets is not None and presets & sc.LINUX32 else 0
        for label, v in (("PER_LINUX", 0), ("PER_LINUX32", 8), ("0xffffffff", 0xFFFFFFFF)):
            exp[f"personality({label})"] = ALLOWED if v == allowed else "EPERM"
    else:
        for label in ("PER_LINUX", "PER_LINUX32", "0xffffffff"):
            exp[f"personality({label})"] = ALLOWED
    fams = set(ALLOWED_FAMILIES)
    if flags & sc.ALLOW_CAN:
        fams.add(29)
    if flags & sc.ALLOW_BLUETOOTH:
        fams.add(31)
    for fam in (*range(47), 0xFFFF):
        denied = presets is not None and fam not in fams
        exp[f"socket({fam})"] = "EAFNOSUPPORT" if denied else ALLOWED
    return exp


_IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")
_EXECUTED = (
    "clone3",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    *_IO_URING,
)
# Every unconditional rule of every preset that has a native number on x86_64, and
# the appended quotactl_fd.
_PLAIN = tuple(
    sorted(
        {
            r.syscall
            for r in sc.preset(sc.STRICT, 0)
            if r.arg is None and r.syscall not in _EXECUTED and sc.syscall_number(r.syscall) >= 0
        }
        | {"quotactl_fd"}
    )
)

CUSTOM = (sc.Rule("setuid", sc.EPERM), sc.Rule("ptrace", sc.ENOSYS))

WITNESS_CONFIGS = {
    "strict": (sc.STRICT, 0, ()),
    "strict+linux32": (sc.STRICT | sc.LINUX32, 0, ()),
    "strict+multiarch": (sc.STRICT, sc.ALLOW_MULTIARCH, ()),
    "strict+io_uring": (sc.STRICT, sc.ALLOW_IO_URING, ()),
    "ext+ns+tty, multiarch+can+bluetooth": (
        sc.EXT | sc.DENY_NS | sc.DENY_TTY,
        sc.ALLOW_MULTIARCH | sc.ALLOW_CAN | sc.ALLOW_BLUETOOTH,
        (),
    ),
    "common only": (0, 0, ()),
    "custom rules replace presets": (sc.STRICT, 0, CUSTOM),
    "no filter": (NONE, 0, ()),
}


def _check(results: dict[str, str], exp: dict[str, str]) -> None:
    got = {}
    for k, v in exp.items():
        if v == "!ENOSYS":
            got[k] = "!ENOSYS" if results[k] != "ENOSYS" else "ENOSYS"
        else:
            got[k] = results[k]
    assert got == exp


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("config", WITNESS_CONFIGS)
def test_every_rule_returns_its_errno(probe: str, config: str, user: str) -> None:
    presets, flags, rules = WITNESS_CONFIGS[config]
    prog = None if presets is None else bpf(presets, flags, rules)
    out = probe_json(probe, "witness", prog, user)
    assert set(_PLAIN) | set(_EXECUTED) <= set(out["results"])
    _check(out["results"], expected(presets, flags, rules))


def test_strict_and_no_filter_disagree_on_every_rule() -> None:
    strict, none = expected(sc.STRICT), expected(NONE)
    same = {k for k in strict if strict[k] == none[k]}
    # What STRICT allows is all that may coincide.
    assert same == {
        "clone(SIGCHLD)",
        "ioctl(TCGETS)",
        "personality(PER_LINUX)",
        *(f"socket({f})" for f in ALLOWED_FAMILIES),
    }


def test_retain_session_false_adds_deny_tty(probe: str) -> None:
    prog = bpf(sc.EXT, 0, retain_session=False)
    res = probe_json(probe, "witness", prog, "self")["results"]
    assert res["ioctl(TIOCSTI)"] == "EPERM"
    res = probe_json(probe, "witness", bpf(sc.EXT, 0, retain_session=True), "self")["results"]
    assert res["ioctl(TIOCSTI)"] == ALLOWED


# -- real calls ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", USERS)
def test_user_namespaces_denied_but_fork_and_threads_work(probe: str, user: str) -> None:
    assert probe_json(probe, "ns", bpf(), user) == {
        "clone_newuser": "EPERM",
        "unshare_newuser": "EPERM",
        "fork": 7,
        "thread": True,
    }
    assert probe_json(probe, "ns", NONE, user) == {
        "clone_newuser": "ok",
        "unshare_newuser": "ok",
        "fork": 7,
        "thread": True,
    }


@pytest.mark.parametrize("user", USERS)
def test_tiocsti_denied_also_with_junk_in_upper_bits(probe: str, user: str) -> None:
    # CVE-2019-10063: the kernel truncates the request to 32 bits.
    assert probe_json(probe, "tty", bpf(), user) == {
        "ctty": "ok",
        "TIOCSTI": "EPERM",
        "TIOCSTI|junk<<32": "EPERM",
        "TCGETS": "ok",
        "injected": 0,
    }
    unfiltered = probe_json(probe, "tty", NONE, user)
    if Path("/proc/sys/dev/tty/legacy_tiocsti").read_text().strip() == "1" or user == "self":
        assert unfiltered["TIOCSTI"] == unfiltered["TIOCSTI|junk<<32"] == "ok"
        assert unfiltered["injected"] == 2
    else:  # pragma: no cover - kernels that refuse TIOCSTI to everyone but root
        assert unfiltered["TIOCSTI"] == "EPERM"


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("flags", [0, sc.ALLOW_MULTIARCH])
def test_socket_families(probe: str, user: str, flags: int) -> None:
    got = probe_json(probe, "socket", bpf(sc.STRICT, flags), user)
    assert got == {
        "AF_UNIX": "ok",
        "AF_INET": "ok",
        "AF_INET6": "ok",
        "AF_NETLINK": "ok",
        "AF_PACKET": "EAFNOSUPPORT",
        "AF_CAN": "EAFNOSUPPORT",
        "AF_BLUETOOTH": "EAFNOSUPPORT",
    }
    # Unfiltered, AF_PACKET is created (root) or refused for lack of CAP_NET_RAW.
    assert probe_json(probe, "socket", NONE, user)["AF_PACKET"] == (
        "ok" if user == "self" and os.geteuid() == 0 else "EPERM"
    )


@pytest.mark.parametrize("user", USERS)
def test_personality(probe: str, user: str) -> None:
    assert probe_json(probe, "personality", bpf(sc.STRICT), user) == {
        "PER_LINUX32": "EPERM",
        "query": "EPERM",
        "PER_LINUX": "ok",
    }
    # LINUX32 swaps the one allowed value (Go: arg0 != allowed).
    assert probe_json(probe, "personality", bpf(sc.STRICT | sc.LINUX32), user) == {
        "PER_LINUX32": "ok",
        "query": "EPERM",
        "PER_LINUX": "EPERM",
    }
    assert probe_json(probe, "personality", NONE, user) == {
        "PER_LINUX32": "ok",
        "query": "ok",
        "PER_LINUX": "ok",
    }


@pytest.mark.parametrize("user", USERS)
def test_custom_rule_setuid(probe: str, user: str) -> None:
    prog = bpf(sc.STRICT, 0, [sc.Rule("setuid", sc.EPERM)])
    assert probe_json(probe, "setuid", prog, user) == {"setuid": "EPERM"}
    assert probe_json(probe, "setuid", NONE, user) == {"setuid": "ok"}
    # The presets are gone: user namespaces work again.
    assert probe_json(probe, "ns", prog, user)["unshare_newuser"] == "ok"


@pytest.mark.parametrize("user", USERS)
def test_32bit_calls_killed_without_multiarch(probe: str, user: str) -> None:
    r = run(probe, "int80", bpf(sc.STRICT, 0), user)
    assert killed_by_sigsys(r, user), (r.returncode, r.stdout, r.stderr)


@pytest.mark.parametrize("user", USERS)
def test_32bit_calls_filtered_with_multiarch(probe: str, user: str) -> None:
    assert probe_json(probe, "int80", bpf(sc.STRICT, sc.ALLOW_MULTIARCH), user) == {
        "getpid": True,
        "unshare(0)": "EPERM",
        "personality(0xffffffff)": "EPERM",
    }
    unfiltered = probe_json(probe, "int80", NONE, user)
    assert unfiltered["getpid"] is True
    assert unfiltered["unshare(0)"] == 0
    assert isinstance(unfiltered["personality(0xffffffff)"], int)


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("flags", [0, sc.ALLOW_MULTIARCH])
def test_x32_calls_killed(probe: str, user: str, flags: int) -> None:
    # Multiarch adds the 32-bit x86 ABI only, never x32.
    r = run(probe, "x32", bpf(sc.STRICT, flags), user)
    assert killed_by_sigsys(r, user), (r.returncode, r.stdout, r.stderr)
    unfiltered = probe_json(probe, "x32", NONE, user)
    assert unfiltered["getpid"] in ("ok", "ENOSYS")  # ENOSYS: kernel without x32


@pytest.mark.parametrize("user", USERS)
def test_status_shows_filter_mode(probe: str, user: str) -> None:
    assert probe_json(probe, "status", bpf(), user) == {
        "Seccomp": 2,
        "Seccomp_filters": 1,
        "NoNewPrivs": 1,
    }
    assert probe_json(probe, "status", NONE, user)["Seccomp"] == 0


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("flags", [0, sc.ALLOW_MULTIARCH | sc.ALLOW_CAN | sc.ALLOW_BLUETOOTH])
def test_io_uring_cannot_create_the_sockets_socket_refuses(
    probe: str, user: str, flags: int
) -> None:
    # IORING_OP_SOCKET never passes through socket(): the ring itself is refused.
    got = probe_json(probe, "io_uring", bpf(sc.STRICT, flags), user)
    assert got == {
        "io_uring_setup": "ENOSYS",
        "socket(AF_INET)": "ok",
        "socket(AF_VSOCK)": "EAFNOSUPPORT",
        "socket(AF_PACKET)": "EAFNOSUPPORT",
    }
    # With the opt-out, or without a filter, the ring creates sockets (the control).
    for prog in (bpf(sc.STRICT, flags | sc.ALLOW_IO_URING), NONE):
        got = probe_json(probe, "io_uring", prog, user)
        assert (got["io_uring_setup"], got["AF_INET"]) == ("ok", "ok"), got
