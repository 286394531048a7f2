"""The seccomp filter as a container's program gets it: the probe runs inside.

The same probe and expectations as test_seccomp_direct.py, but the filter is
the one the parent compiles for a container and init loads into itself before
starting the program, so this proves the whole path: params → BPF → setup
record → init → inherited by the program.  Every configuration is checked
against the unfiltered container too, so each test can fail.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hakurei import seccomp as sc
from hakurei.ops import Ops
from hakurei.results import Completed

from conftest import PY, base_ops, run
from test_seccomp_direct import CUSTOM, WITNESS_CONFIGS, _check

PROBE = Path(__file__).with_name("seccomp_probe.py").read_bytes()


def probe_ops() -> Ops:
    return (
        base_ops()
        .place("/probe.py", PROBE)
        .proc("/proc")
        .dev("/dev", mqueue=True)
        .tmpfs("/tmp", 0, 0o1777)
    )


def in_container(case: str, **params: Any) -> Completed:
    params.setdefault("retain_session", True)  # the filter is exactly the presets asked for
    return run([PY, "-I", "-S", "/probe.py", case], probe_ops(), **params)


def probe_json(case: str, **params: Any) -> dict[str, Any]:
    r = in_container(case, **params)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout is not None
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def filter_params(presets: int | None, flags: int, rules: tuple[sc.Rule, ...]) -> dict[str, Any]:
    if presets is None:
        return {"seccomp_disable": True}
    return {"seccomp_presets": presets, "seccomp_flags": flags, "seccomp_rules": list(rules)}


@pytest.mark.parametrize("config", WITNESS_CONFIGS)
def test_every_rule_returns_its_errno_inside_a_container(config: str) -> None:
    presets, flags, rules, exp = WITNESS_CONFIGS[config]
    out = probe_json("witness", **filter_params(presets, flags, rules))
    _check(out["results"], exp)


def test_a_new_session_adds_deny_tty() -> None:
    res = probe_json("witness", seccomp_presets=sc.EXT, retain_session=False)["results"]
    assert res["ioctl(TIOCSTI)"] == res["ioctl(TIOCSTI|junk<<32)"] == "EPERM"
    res = probe_json("witness", seccomp_presets=sc.EXT, retain_session=True)["results"]
    assert res["ioctl(TIOCSTI)"] == "ENOSYS"  # the witness: allowed by our filter


def test_user_namespaces_denied_but_fork_and_threads_work() -> None:
    assert probe_json("ns", seccomp_presets=sc.STRICT) == {
        "clone_newuser": "EPERM",
        "unshare_newuser": "EPERM",
        "fork": 7,
        "thread": True,
    }
    assert probe_json("ns", seccomp_disable=True)["unshare_newuser"] == "ok"


def test_tiocsti_denied_also_with_junk_in_the_upper_bits() -> None:
    got = probe_json("tty", seccomp_presets=sc.STRICT)
    assert (got["TIOCSTI"], got["TIOCSTI|junk<<32"], got["injected"]) == ("EPERM", "EPERM", 0)
    free = probe_json("tty", seccomp_disable=True)
    assert (free["TIOCSTI"], free["injected"]) == ("ok", 2)


def test_socket_families() -> None:
    got = probe_json("socket", seccomp_presets=sc.STRICT)
    assert (got["AF_PACKET"], got["AF_UNIX"], got["AF_INET"]) == ("EAFNOSUPPORT", "ok", "ok")
    assert probe_json("socket", seccomp_disable=True)["AF_PACKET"] == "EPERM"  # no CAP_NET_RAW


def test_io_uring_is_refused_unless_allowed() -> None:
    """IORING_OP_SOCKET would create AF_VSOCK/AF_PACKET sockets that socket() is refused."""
    got = probe_json("io_uring", seccomp_presets=sc.STRICT)
    assert got["io_uring_setup"] == "ENOSYS" and "AF_VSOCK" not in got
    assert got["socket(AF_VSOCK)"] == got["socket(AF_PACKET)"] == "EAFNOSUPPORT"
    for params in ({"seccomp_flags": sc.ALLOW_IO_URING}, {"seccomp_disable": True}):
        got = probe_json("io_uring", seccomp_presets=sc.STRICT, **params)
        assert (got["io_uring_setup"], got["AF_INET"]) == ("ok", "ok"), (params, got)
    # What the opt-out gives up: the ring makes a family socket() refuses.
    got = probe_json("io_uring", seccomp_presets=sc.STRICT, seccomp_flags=sc.ALLOW_IO_URING)
    assert got["socket(AF_VSOCK)"] == "EAFNOSUPPORT"
    if Path("/dev/vsock").exists():  # the host kernel has vsock loaded
        assert got["AF_VSOCK"] == "ok"


@pytest.mark.parametrize(("options", "setup"), [((), "ENOSYS"), (("--allow-io-uring",), "ok")])
def test_hakurei_exec_refuses_io_uring_unless_allowed(options: tuple[str, ...], setup: str) -> None:
    cmd = [sys.executable, "-m", "hakurei", "exec", *options, "--", PY, "-I", "-S", "-c"]
    r = subprocess.run(
        [*cmd, PROBE.decode(), "io_uring"], capture_output=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["io_uring_setup"] == setup


def test_personality_linux32_only_with_its_preset() -> None:
    assert probe_json("personality", seccomp_presets=sc.STRICT)["PER_LINUX32"] == "EPERM"
    got = probe_json("personality", seccomp_presets=sc.STRICT | sc.LINUX32)
    assert got["PER_LINUX32"] == "ok"


def test_custom_rule_setuid() -> None:
    assert probe_json("setuid", seccomp_rules=[CUSTOM[0]]) == {"setuid": "EPERM"}
    assert probe_json("setuid", seccomp_disable=True) == {"setuid": "ok"}


def test_32bit_and_x32_calls_are_killed_without_multiarch() -> None:
    for case in ("int80", "x32"):
        r = in_container(case, seccomp_presets=sc.STRICT)
        assert r.returncode == 128 + signal.SIGSYS, (case, r.returncode, r.stderr)
    got = probe_json("int80", seccomp_presets=sc.STRICT, seccomp_flags=sc.ALLOW_MULTIARCH)
    assert got == {"getpid": True, "unshare(0)": "EPERM", "personality(0xffffffff)": "EPERM"}


def test_status_shows_the_filter_in_the_program() -> None:
    got = probe_json("status", seccomp_presets=sc.STRICT)
    assert (got["Seccomp"], got["NoNewPrivs"]) == (2, 1)
    assert probe_json("status", seccomp_disable=True)["Seccomp"] == 0
