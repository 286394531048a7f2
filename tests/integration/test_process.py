"""The process model seen from inside: PID 1 is init, the program is PID 2, no privileges."""

from __future__ import annotations

import os

from conftest import ok, py, run, sh


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_program_is_pid_2_under_init_pid_1() -> None:
    out = ok(sh("echo $$; cat /proc/1/comm; cat /proc/1/status | grep '^PPid'"))
    pid, init_comm, ppid = out.split("\n")[:3]
    assert pid == "2"
    assert init_comm == "init"
    assert ppid.split() == ["PPid:", "0"]


def test_program_has_no_capabilities_and_no_new_privs() -> None:
    fields = status_fields(ok(sh("cat /proc/self/status")))
    assert {cap: fields[cap] for cap in NO_CAPS} == NO_CAPS
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"


#: Every capability set, all 64 bits: a bit >= 32 left set must show.
NO_CAPS = {cap: "0000000000000000" for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def test_init_itself_is_filtered_and_unprivileged() -> None:
    fields = status_fields(ok(sh("cat /proc/1/status")))
    assert fields["Seccomp"] == "2"
    assert fields["NoNewPrivs"] == "1"
    assert {cap: fields[cap] for cap in NO_CAPS} == NO_CAPS


def test_ids_are_mapped_as_requested() -> None:
    for uid, gid in ((1000, 100), (1, 31), (9, 9), (1971, 100), (8, 16384)):
        out = ok(py("import os; print(os.getuid(), os.getgid())", uid=uid, gid=gid))
        assert out.split() == [str(uid), str(gid)]


def test_id_below_one_becomes_the_overflow_id() -> None:
    out = ok(py("import os; print(os.getuid(), os.getgid())", uid=0, gid=0))
    assert out.split() == ["65534", "65534"]


def test_hostname_is_the_requested_one_else_the_hosts() -> None:
    # That the UTS namespace is private: test_namespaces.py.
    assert ok(sh("hostname", hostname="test-minimal")).strip() == "test-minimal"
    assert ok(sh("hostname")).strip() == os.uname().nodename


def interfaces(proc_net_dev: str) -> list[str]:
    """Interface names from /proc/net/dev (two header lines, then ``name: counters``)."""
    return sorted(line.split(":", 1)[0].strip() for line in proc_net_dev.splitlines()[2:])


def test_only_loopback_in_a_new_network_namespace() -> None:
    assert interfaces(ok(sh("cat /proc/net/dev"))) == ["lo"]
    with open("/proc/self/net/dev") as f:
        host = interfaces(f.read())
    assert interfaces(ok(sh("cat /proc/net/dev", host_net=True))) == host


def test_loopback_is_up_in_the_new_network_namespace() -> None:
    code = (
        "import socket\n"
        "srv = socket.create_server(('127.0.0.1', 0))\n"
        "c = socket.create_connection(srv.getsockname(), timeout=5)\n"
        "c.sendall(b'ping'); print(srv.accept()[0].recv(4).decode())\n"
    )
    assert ok(py(code)).strip() == "ping"


def test_program_runs_in_a_new_session_unless_retained() -> None:
    code = "import os; print(os.getsid(0) == os.getpid())"
    assert ok(py(code)).strip() == "True"
    assert ok(py(code, retain_session=True)).strip() == "False"


def test_environment_is_exactly_what_was_given() -> None:
    # env(1), not python: CPython's own locale coercion would add LC_CTYPE.
    out = ok(run(["/usr/bin/env"], env={"A": "1", "B": "x=y"}))
    assert out.splitlines() == ["A=1", "B=x=y"]


def test_working_directory() -> None:
    assert ok(sh("pwd", dir="/usr/bin")).strip() == "/usr/bin"
