"""The D-Bus enablement against a real bus: a private ``dbus-daemon``, real proxy, real app.

Each test starts its own ``dbus-daemon --session`` on a socket in a private
temp dir (ready when it prints its address), ``dbus-test-tool echo``
services on it (ready when the bus says their name has an owner), then a
launcher-like session: an instance in a private state store, ``DBus.check``
and ``prepare`` in a trio nursery, and app containers built from a minimal op
list plus the grant, with ``dbus-send`` inside.  Ends of sessions are the
nursery's cancellation, as in the launcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import pytest
import trio
from desktop import private_bus
from desktop import wait_line as _wait_line

from hakurei.app import dbus, journal
from hakurei.app.dbus import DBus
from hakurei.app.enable import EnableError, Grant, Session
from hakurei.app.records import BusConfig, Config, ContainerConfig, Enablements
from hakurei.app.store import Instance, Store
from hakurei.container import run
from hakurei.ops import Ops
from hakurei.std import MS_RDONLY

from conftest import comm, descendants

DEADLINE = 15.0
APP_ID = "org.example.App"
UID, GID = os.getuid(), os.getgid()
RUNTIME = f"/run/user/{UID}"


def config(session_bus: BusConfig | None = None, system_bus: BusConfig | None = None) -> Config:
    return Config(
        container=ContainerConfig(shell="/bin/sh", home="/tmp", path="/bin/sh"),
        id=APP_ID,
        enablements=Enablements(dbus=True),
        session_bus=session_bus,
        system_bus=system_bus,
    )


@dataclass
class Launch:
    """One launcher-like session: its instance, the enablement, its grant."""

    session: Session
    instance: Instance
    dbus: DBus
    grant: Grant
    lines: list[str]


@contextmanager
def store() -> Iterator[Store]:
    with (
        tempfile.TemporaryDirectory(prefix="hk-store-") as tmp,
        Store(os.path.join(tmp, "store"), host_roots=[tmp]) as st,
    ):
        yield st


def new_session(st: Store, cfg: Config, env: dict[str, str]) -> tuple[Session, Instance]:
    inst = st.create()
    s = Session(
        config=cfg,
        host_env=env,
        instance_id=inst.id,
        instance_dir=inst.path,
        instance_dir_fd=inst.dir_fd,
        runtime=RUNTIME,
        uid=UID,
        gid=GID,
        journal=inst.journal,
    )
    return s, inst


@asynccontextmanager
async def launched(
    st: Store, cfg: Config, env: dict[str, str], d: DBus | None = None
) -> AsyncIterator[Launch]:
    """check + prepare in a nursery; on exit the nursery is cancelled and the journal replayed."""
    s, inst = new_session(st, cfg, env)
    lines: list[str] = []
    if d is None:
        d = DBus(relay=lines.append)
    try:
        d.check(s)
        async with trio.open_nursery() as nursery:
            s.nursery = nursery
            g = await d.prepare(s)
            yield Launch(s, inst, d, g, lines)
            nursery.cancel_scope.cancel()
    finally:
        assert inst.revert() == []


def app_ops(g: Grant) -> Ops:
    """A launcher-like app filesystem: /usr, a private 0700 runtime dir, the grant's binds."""
    ops = Ops().bind("/usr", "/usr")
    for top in ("/bin", "/lib", "/lib64"):
        if os.path.islink(top):
            ops.link(top, os.readlink(top))
    ops.proc("/proc").dev("/dev").tmpfs("/tmp", 0, 0o1777).tmpfs(RUNTIME, 0, 0o700)
    ops.extend(g.ops)
    return ops.remount("/", MS_RDONLY)


async def inside(g: Grant, script: str) -> tuple[int, str]:
    """Run ``script`` in an app container with the grant; (status, stdout + stderr)."""
    r = await run(
        "/bin/sh",
        ["sh", "-c", script],
        ops=app_ops(g),
        env={"PATH": "/usr/bin:/bin", **g.env},
        uid=UID,
        gid=GID,
        capture_output=True,
        timeout=DEADLINE,
    )
    assert r.stdout is not None and r.stderr is not None
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def send(dest: str, method: str, *args: str, path: str = "/", system: bool = False) -> str:
    bus = "--system" if system else "--session"
    return " ".join(["dbus-send", bus, "--print-reply", f"--dest={dest}", path, method, *args])


LIST_NAMES = send("org.freedesktop.DBus", "org.freedesktop.DBus.ListNames")


def test_allowed_call_works_and_other_names_are_hidden_with_the_default_rules() -> None:
    with private_bus() as bus, store() as st:
        bus.echo("org.freedesktop.Notifications")
        bus.echo("org.example.Denied")

        async def main() -> None:
            async with launched(st, config(), bus.env) as launch:
                notify = send(
                    "org.freedesktop.Notifications",
                    "org.freedesktop.Notifications.Notify",
                    "string:app", "uint32:0", "string:", "string:hello", "string:body",
                    "array:string:", "dict:string:string:", "int32:-1",
                    path="/org/freedesktop/Notifications",
                )  # fmt: skip
                denied = send("org.example.Denied", "org.example.X.Ping", path="/x")
                status, out = await inside(
                    launch.grant,
                    "echo uid=$(id -u); echo addr=$DBUS_SESSION_BUS_ADDRESS; "
                    f"{notify}; echo notify=$?; "
                    f"{LIST_NAMES} && {{ {denied}; echo denied=$?; }}",
                )
                assert status == 0, out
                assert f"uid={UID}\n" in out
                assert f"addr=unix:path={RUNTIME}/bus\n" in out
                assert "notify=0\n" in out  # the stub answered the Notify through the proxy
                assert '"org.freedesktop.Notifications"' in out  # ListNames shows it
                assert '"org.example.Denied"' not in out  # and hides the other one
                assert "org.freedesktop.DBus.Error.ServiceUnknown" in out
                assert "denied=1" in out

        trio.run(main)


def request_name(name: str) -> str:
    return send(
        "org.freedesktop.DBus", "org.freedesktop.DBus.RequestName", f"string:{name}", "uint32:4"
    )


def test_app_may_own_only_its_own_names() -> None:
    with private_bus() as bus, store() as st:

        async def main() -> None:
            async with launched(st, config(), bus.env) as launch:
                _, out = await inside(
                    launch.grant,
                    f"{request_name(APP_ID + '.Main')}; echo own=$?; "
                    f"{request_name('org.example.Other')}; echo other=$?",
                )
                assert "own=0" in out and "uint32 1" in out, out  # primary owner
                assert "other=1" in out, out  # the proxy refuses (as ServiceUnknown)
            assert not bus.has_owner("org.example.Other")

        trio.run(main)


def _alive(pids: dict[int, int]) -> list[int]:
    return [pid for pid, start in pids.items() if journal.starttime(pid) == start]


def _proxy_pids(container_pid: int) -> dict[int, int]:
    """The proxy's container and everything in it, each with its start time."""
    pids = [container_pid, *descendants(container_pid)]
    out = {pid: journal.starttime(pid) for pid in pids}
    return {pid: start for pid, start in out.items() if start is not None}


def test_proxy_and_its_sockets_are_gone_when_the_session_ends() -> None:
    with private_bus() as bus, store() as st:

        async def main() -> tuple[dict[int, int], str]:
            async with launched(st, config(), bus.env) as launch:
                assert launch.dbus.pid is not None
                pids = _proxy_pids(launch.dbus.pid)
                comms = {comm(pid) for pid in pids}
                assert "xdg-dbus-proxy" in comms, comms
                socket = os.path.join(launch.session.instance_dir, "dbus", "bus")
                assert os.path.exists(socket)
                return pids, launch.session.instance_dir
            raise AssertionError("unreachable")

        pids, instance_dir = trio.run(main)
        assert _alive(pids) == []
        assert not os.path.exists(instance_dir)


LAUNCHER = r"""
import os, signal, sys, trio
from hakurei.app.dbus import DBus
from hakurei.app.enable import Session
from hakurei.app.records import Config, ContainerConfig, Enablements
from hakurei.app.store import Store

async def main():
    st = Store(sys.argv[1], host_roots=[os.path.dirname(sys.argv[1])])
    inst = st.create()
    cfg = Config(ContainerConfig("/bin/sh", "/tmp", "/bin/sh"), id="org.example.App",
                 enablements=Enablements(dbus=True))
    async with trio.open_nursery() as nursery:
        s = Session(cfg, dict(os.environ), inst.id, inst.path, inst.dir_fd,
                    f"/run/user/{os.getuid()}", os.getuid(), os.getgid(), inst.journal,
                    nursery=nursery)
        d = DBus()
        d.check(s)
        await d.prepare(s)
        with trio.open_signal_receiver(signal.SIGINT) as interrupts:
            print(d.pid, inst.path, flush=True)
            async for _ in interrupts:  # a launcher passes Ctrl-C on to its app
                print("interrupted", flush=True)

trio.run(main)
"""


def test_proxy_dies_with_a_sigkilled_launcher_and_gc_removes_its_sockets() -> None:
    with private_bus() as bus, store() as st:
        launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, st.path],
            env=bus.env,
            stdout=subprocess.PIPE,
        )
        try:
            pid_text, instance_dir = _wait_line(launcher, "launcher").split()
            pids = _proxy_pids(int(pid_text))
            assert "xdg-dbus-proxy" in {comm(pid) for pid in pids}
            assert os.path.exists(os.path.join(instance_dir, "dbus", "bus"))
        finally:
            launcher.kill()
            launcher.wait()
            assert launcher.stdout is not None
            launcher.stdout.close()
        end = time.monotonic() + DEADLINE
        while _alive(pids):  # the containers notice their parent's death through a pidfd
            assert time.monotonic() < end, f"still alive: {_alive(pids)}"
            time.sleep(0.02)
        assert st.gc() == []
        assert not os.path.exists(instance_dir)


def test_ctrl_c_to_the_launchers_process_group_does_not_reach_the_proxy() -> None:
    with private_bus() as bus, store() as st:
        launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, st.path],
            env=bus.env,
            stdout=subprocess.PIPE,
            start_new_session=True,  # its own group, as a shell makes for a foreground job
        )
        try:
            pid_text, instance_dir = _wait_line(launcher, "launcher").split()
            pids = _proxy_pids(int(pid_text))
            assert launcher.pid not in {os.getpgid(pid) for pid in pids}
            os.killpg(launcher.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            assert _wait_line(launcher, "launcher") == "interrupted"
            socket = os.path.join(instance_dir, "dbus", "bus")
            env = {**bus.env, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={socket}"}
            names = subprocess.run(
                LIST_NAMES.split(), env=env, capture_output=True, text=True, timeout=DEADLINE
            )
            assert names.returncode == 0, names.stderr
            assert _alive(pids) == list(pids)
        finally:
            launcher.kill()
            launcher.wait()
            assert launcher.stdout is not None
            launcher.stdout.close()
        assert st.gc() == []


def test_log_lines_are_relayed_to_stderr_with_a_dbus_prefix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = BusConfig(talk=("org.example.Allowed",), filter=True, log=True)
    with private_bus() as bus, store() as st:
        bus.echo("org.example.Allowed")

        async def main() -> None:
            async with launched(st, config(rules), bus.env, DBus()) as launch:
                status, out = await inside(
                    launch.grant, send("org.example.Allowed", "org.example.X.Ping", path="/x")
                )
                assert status == 0, out

        trio.run(main)
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith("(dbus) ") for line in err), err
    assert any("org.example.Allowed" in line for line in err), err


def test_no_output_without_logging() -> None:
    with private_bus() as bus, store() as st:
        bus.echo("org.example.Allowed")

        async def main() -> list[str]:
            rules = BusConfig(talk=("org.example.Allowed",), filter=True)
            async with launched(st, config(rules), bus.env) as launch:
                status, out = await inside(
                    launch.grant, send("org.example.Allowed", "org.example.X.Ping", path="/x")
                )
                assert status == 0, out
                return launch.lines
            raise AssertionError("unreachable")

        assert trio.run(main) == []


def test_system_bus_is_proxied_at_the_well_known_path_only_when_configured() -> None:
    with private_bus() as bus, private_bus() as system, store() as st:
        system.echo("org.example.Sys")
        env = {**bus.env, "DBUS_SYSTEM_BUS_ADDRESS": system.address}
        ping = send("org.example.Sys", "org.example.X.Ping", path="/x", system=True)

        async def main() -> None:
            rules = BusConfig(talk=("org.example.Sys",), filter=True)
            async with launched(st, config(system_bus=rules), env) as launch:
                status, out = await inside(launch.grant, f"echo $DBUS_SYSTEM_BUS_ADDRESS; {ping}")
                assert status == 0, out
                assert "unix:path=/run/dbus/system_bus_socket\n" in out
            async with launched(st, config(), env) as launch:
                status, out = await inside(launch.grant, "ls /run/dbus")
                assert status != 0 and "DBUS_SYSTEM_BUS_ADDRESS" not in launch.grant.env

        trio.run(main)


def test_abstract_session_bus_works() -> None:
    name = f"hakurei-test-{os.getpid()}-{time.monotonic_ns()}"
    with private_bus(f"unix:abstract={name}") as bus, store() as st:
        bus.echo("org.example.Allowed")

        async def main() -> None:
            rules = BusConfig(talk=("org.example.Allowed",), filter=True)
            async with launched(st, config(rules), bus.env) as launch:
                status, out = await inside(
                    launch.grant, send("org.example.Allowed", "org.example.X.Ping", path="/x")
                )
                assert status == 0, out

        trio.run(main)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"DBUS_SESSION_BUS_ADDRESS": "tcp:host=localhost,port=1"}, "not supported"),
        ({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus"}, "no session bus"),
        ({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/etc/passwd"}, "is not a socket"),
        ({"DBUS_SESSION_BUS_ADDRESS": "unix:tmpdir=/tmp"}, "tmpdir"),
        ({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/tmp/\x1b[31m"}, "must be %-escaped"),
        ({}, "no session bus"),
        ({"PATH": "/nonexistent"}, "xdg-dbus-proxy not found"),
    ],
)
def test_bad_bus_address_or_missing_proxy_is_one_line_and_starts_nothing(
    env: dict[str, str], words: str
) -> None:
    with private_bus() as bus, store() as st:
        host_env = {**bus.env, **env} if env else {"PATH": os.environ["PATH"]}
        s, inst = new_session(st, config(), host_env)
        try:
            with pytest.raises(EnableError) as caught:
                DBus().check(s)
            message = str(caught.value)
            assert words in message and "\n" not in message and message.isprintable(), message
            assert sorted(os.listdir(inst.path)) == ["journal", "lock"]
            assert journal.read(inst.dir_fd) == ([], [])
        finally:
            assert inst.revert() == []


def test_dotless_rule_from_code_is_refused_before_the_proxy_starts() -> None:
    with private_bus() as bus, store() as st:
        s, inst = new_session(st, config(BusConfig(talk=("librewolf",))), bus.env)
        try:
            with pytest.raises(EnableError, match=r"session_bus.talk.*librewolf.*no dot"):
                DBus().check(s)
        finally:
            assert inst.revert() == []


def test_proxy_that_fails_to_start_is_one_line_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A rule the checks would refuse, slipped past them: the real proxy refuses it at start.
    real = dbus.proxy_args
    monkeypatch.setattr(dbus, "proxy_args", lambda p: [*real(p), "--talk=librewolf"])
    with private_bus() as bus, store() as st:

        async def main() -> None:
            s, inst = new_session(st, config(), bus.env)
            d = DBus()
            d.check(s)
            try:
                async with trio.open_nursery() as nursery:
                    s.nursery = nursery
                    with pytest.raises(EnableError) as caught:
                        await d.prepare(s)
                message = str(caught.value)
                assert "did not start" in message and "librewolf" in message, message
                assert "\n" not in message
                assert d.pid is not None and journal.starttime(d.pid) is None  # reaped
            finally:
                assert inst.revert() == []

        trio.run(main)
