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
from hakurei.init.kernel import Kernel
bpf = sys.stdin.buffer.read()
k = Kernel()
k.set_no_new_privs()
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
#
# The expectations are literal, written from the reference's preset lists
# (/work/shared/reference/container.md, section 8.2 to 8.4) and the README's list
# of what hakurei appends, never computed by hakurei.seccomp, the code under test.
# Only calls with an x86_64 number are probed: no *32 calls, clock_*64, umount,
# vm86, vm86old, subpage_prot, switch_endian.

ALLOWED = "ENOSYS"  # what the witness answers for a call the filter lets through
RUN = "!ENOSYS"  # a call the filter lets through and the kernel refuses harmlessly

# 8.3 1. common, all EPERM
COMMON = dict.fromkeys(
    ("syslog", "uselib", "acct", "quotactl", "add_key", "keyctl", "request_key", "move_pages",
     "mbind", "get_mempolicy", "set_mempolicy", "migrate_pages"),
    "EPERM",
)  # fmt: skip
# 2. DenyNS: clone only with CLONE_NEWUSER; clone3 and the new mount API with ENOSYS
NAMESPACE = {
    **dict.fromkeys(
        ("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "clone(CLONE_NEWUSER)"),
        "EPERM",
    ),
    **dict.fromkeys(
        ("clone3", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
         "mount_setattr"),
        "ENOSYS",
    ),
}  # fmt: skip
# 3. DenyTTY: TIOCSTI and TIOCLINUX, comparing the low 32 bits of the request only
TTY = dict.fromkeys(
    ("ioctl(TIOCSTI)", "ioctl(TIOCSTI|junk<<32)", "ioctl(TIOCLINUX)", "ioctl(TIOCLINUX|junk<<32)"),
    "EPERM",
)
# 4. DenyDevel: personality other than PER_LINUX (0), or PER_LINUX32 (8) with Linux32
DEVEL = dict.fromkeys(
    ("perf_event_open", "ptrace", "personality(PER_LINUX32)", "personality(0xffffffff)"), "EPERM"
)
DEVEL_LINUX32 = dict.fromkeys(
    ("perf_event_open", "ptrace", "personality(PER_LINUX)", "personality(0xffffffff)"), "EPERM"
)
# 5. emu, without AllowMultiarch (emu-ext has no x86_64 numbers)
EMU = {"modify_ldt": "EPERM"}
# 6. Ext: common-ext; with DenyNS also ns-ext
COMMON_EXT = dict.fromkeys(
    ("adjtimex", "clock_adjtime", "clock_settime", "settimeofday", "delete_module",
     "finit_module", "init_module", "kexec_file_load", "kexec_load", "reboot", "swapoff",
     "swapon"),
    "EPERM",
)  # fmt: skip
NAMESPACE_EXT = dict.fromkeys(
    ("chown", "fchown", "fchownat", "lchown", "setgid", "setgroups", "setregid", "setresgid",
     "setresuid", "setreuid", "setuid"),
    "EPERM",
)  # fmt: skip
# hakurei's own, appended to every filter: quotactl_fd, and io_uring unless ALLOW_IO_URING
APPENDED = {"quotactl_fd": "EPERM"}
IO_URING = dict.fromkeys(("io_uring_setup", "io_uring_enter", "io_uring_register"), "ENOSYS")
# 8.2 4. the socket-family allowlist
ALLOWED_FAMILIES = {0, 1, 2, 10, 16}  # AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
AF_CAN, AF_BLUETOOTH = 29, 31
FAMILIES = (*range(47), 0xFFFF)


def sockets_denied(*allowed: int) -> dict[str, str]:
    return {
        f"socket({f})": "EAFNOSUPPORT"
        for f in FAMILIES
        if f not in ALLOWED_FAMILIES and f not in allowed
    }


#: Calls the probe executes (the filter answers them with ENOSYS when it refuses them).
EXECUTED = (
    "clone3", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip
#: Every call the witness case reports, refused by some configuration or not.
PROBED = (
    *COMMON, *NAMESPACE, *TTY, *DEVEL, "personality(PER_LINUX)", *EMU, *COMMON_EXT,
    *NAMESPACE_EXT, *APPENDED, *IO_URING, "clone(SIGCHLD)", "ioctl(TCGETS)",
    *(f"socket({f})" for f in FAMILIES),
)  # fmt: skip


def expected(*refused: dict[str, str]) -> dict[str, str]:
    """What the witness reports under a filter that refuses exactly ``refused``."""
    exp = {label: RUN if label in EXECUTED else ALLOWED for label in PROBED}
    for group in refused:
        exp.update(group)
    return exp


CUSTOM = (sc.Rule("setuid", sc.EPERM), sc.Rule("ptrace", sc.ENOSYS))
CAN_BT = sockets_denied(AF_CAN, AF_BLUETOOTH)
STRICT = (COMMON, NAMESPACE, TTY, DEVEL, EMU, COMMON_EXT, NAMESPACE_EXT)
EVERY_FILTER = (APPENDED, IO_URING, sockets_denied())

#: name -> (presets, flags, custom rules, what the witness must report); retain_session
#: is set, so deny-tty is only there when asked for.
WITNESS_CONFIGS: dict[str, tuple[int | None, int, tuple[sc.Rule, ...], dict[str, str]]] = {
    "strict": (sc.STRICT, 0, (), expected(*STRICT, *EVERY_FILTER)),
    "strict+linux32": (
        sc.STRICT | sc.LINUX32,
        0,
        (),
        expected(
            COMMON, NAMESPACE, TTY, DEVEL_LINUX32, EMU, COMMON_EXT, NAMESPACE_EXT, *EVERY_FILTER
        ),
    ),
    "strict+multiarch": (
        sc.STRICT,
        sc.ALLOW_MULTIARCH,
        (),
        expected(COMMON, NAMESPACE, TTY, DEVEL, COMMON_EXT, NAMESPACE_EXT, *EVERY_FILTER),
    ),
    "strict+io_uring": (
        sc.STRICT,
        sc.ALLOW_IO_URING,
        (),
        expected(*STRICT, APPENDED, sockets_denied()),
    ),
    "ext+ns+tty, multiarch+can+bluetooth": (
        sc.EXT | sc.DENY_NS | sc.DENY_TTY,
        sc.ALLOW_MULTIARCH | sc.ALLOW_CAN | sc.ALLOW_BLUETOOTH,
        (),
        expected(COMMON, NAMESPACE, TTY, COMMON_EXT, NAMESPACE_EXT, APPENDED, IO_URING, CAN_BT),
    ),
    "common only": (0, 0, (), expected(COMMON, EMU, *EVERY_FILTER)),
    "custom rules replace presets": (
        sc.STRICT,
        0,
        CUSTOM,
        expected({"setuid": "EPERM", "ptrace": "ENOSYS"}, *EVERY_FILTER),
    ),
    "no filter": (NONE, 0, (), expected()),
}


def _check(results: dict[str, str], exp: dict[str, str]) -> None:
    assert set(results) == set(exp)  # the probe and the table name the same calls
    got = {}
    for k, v in exp.items():
        if v == RUN:
            got[k] = RUN if results[k] != "ENOSYS" else "ENOSYS"
        else:
            got[k] = results[k]
    assert got == exp


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("config", WITNESS_CONFIGS)
def test_every_rule_returns_its_errno(probe: str, config: str, user: str) -> None:
    presets, flags, rules, exp = WITNESS_CONFIGS[config]
    prog = None if presets is None else bpf(presets, flags, rules)
    _check(probe_json(probe, "witness", prog, user)["results"], exp)


def test_strict_and_no_filter_disagree_on_every_rule() -> None:
    strict, none = WITNESS_CONFIGS["strict"][3], WITNESS_CONFIGS["no filter"][3]
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
