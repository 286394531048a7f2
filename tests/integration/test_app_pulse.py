"""PulseAudio through the launcher's enablement: a real server, real containers, real revocation.

Each server is a ``pulseaudio`` of the test user with its own runtime dir and
home (so its own socket and cookie) and a null sink; readiness is ``pactl
info`` answering, polled until a deadline.  The containers are started by
``hakurei.run`` with what the launcher's plan gives every app (a private
``/run/user/<uid>`` tmpfs, a ``/tmp`` tmpfs, a placed ``/etc/passwd``: the
default profile plus the runtime tmpfs) and the enablement's ``Grant``.
Revert is the instance's journal replay, as the monitor and ``gc`` do it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import pytest
import trio
from desktop import Pulse as Server
from desktop import pulseaudio

import hakurei
from hakurei.app import pulse
from hakurei.app.config import loads
from hakurei.app.enable import EnableError, Grant, Session
from hakurei.app.store import Instance, Store
from hakurei.ops import Ops
from hakurei.profile import default_env, default_profile
from hakurei.results import Completed

UID, GID = os.getuid(), os.getgid()
RUNTIME = f"/run/user/{UID}"
#: a stream's sink input shows up within this long (2 shared cores: be generous)
STREAM_DEADLINE = 20.0
PLAY = "exec pacat --raw --format=s16le --rate=44100 --channels=2"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with pulseaudio() as s:
        yield s


@dataclass
class Launch:
    instance: Instance
    session: Session
    grant: Grant


def _session(server: Server, instance: Instance, mode: str) -> Session:
    config = loads(
        json.dumps(
            {
                "enablements": {"pulse": True},
                "pulse_socket": mode,
                "container": {"shell": "/bin/sh", "home": "/home/app", "path": "/bin/sh"},
            }
        )
    )
    return Session(
        config=config,
        host_env=server.env,
        instance_id=instance.id,
        instance_dir=instance.path,
        instance_dir_fd=instance.dir_fd,
        runtime=RUNTIME,
        uid=UID,
        gid=GID,
        journal=instance.journal,
    )


@contextmanager
def launched(server: Server, mode: str = "instance") -> Iterator[Launch]:
    """An instance in a store beside the server's socket, its Pulse grant prepared.

    Afterwards whatever the test did not revert is collected by ``gc``.
    """
    store = Store(f"{server.rt}/hakurei", host_roots=[server.rt])
    instance = store.create()
    try:
        session = _session(server, instance, mode)
        enablement = pulse.Pulse()
        enablement.check(session)
        grant = trio.run(enablement.prepare, session)
        yield Launch(instance, session, grant)
    finally:
        instance.close()
        assert store.gc() == []
        store.close()


def _container_kw(grant: Grant) -> dict[str, object]:
    profile = default_profile(UID, GID)
    profile.extend(Ops().tmpfs(RUNTIME, 0, 0o700))
    profile.extend(grant.ops)
    env = {**default_env(), "XDG_RUNTIME_DIR": RUNTIME, **grant.env}
    return {"ops": profile.finish(), "env": env, "uid": UID, "gid": GID}


def run_inside(grant: Grant, script: str, timeout: float = 60) -> Completed:
    return trio.run(
        partial(
            hakurei.run,
            "/bin/sh",
            ["sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            **_container_kw(grant),  # type: ignore[arg-type]
        )
    )


def _wait_for_sink_input(server: Server, deadline: float) -> list[str]:
    while True:
        inputs = server.pactl("list", "short", "sink-inputs").splitlines()
        if inputs or time.monotonic() > deadline:
            return inputs
        time.sleep(0.05)  # polling the server's own list, bounded by the deadline


# --- tests -----------------------------------------------------------------------------


def test_pactl_inside_reaches_the_server_through_the_instance_socket(server: Server) -> None:
    with launched(server) as run:
        assert run.grant.env["PULSE_SERVER"] == f"unix:{RUNTIME}/pulse/native"
        r = run_inside(run.grant, 'pactl info && wc -c < "$PULSE_COOKIE"')
        assert r.returncode == 0, r.stderr
        assert "Server Name: pulseaudio" in r.stdout
        assert "Default Sink: null" in r.stdout
        assert f"Server String: unix:{RUNTIME}/pulse/native" in r.stdout
        assert r.stdout.splitlines()[-1].strip() == "256"  # the cookie, bound read-only
        (module,) = server.modules_naming(run.instance.id)
        assert f'socket="{run.instance.path}/pulse/native"' in module


def test_pacat_inside_plays_to_the_null_sink(server: Server) -> None:
    with launched(server) as run:
        r = run_inside(run.grant, f"head -c 35280 /dev/zero | {PLAY}")
        assert (r.returncode, r.stderr) == (0, "")


def test_revert_cuts_a_running_stream_and_unloads_the_module(server: Server) -> None:
    sink_index = {
        fields[1]: fields[0]
        for fields in (
            line.split("\t") for line in server.pactl("list", "short", "sinks").splitlines()
        )
    }
    with launched(server) as run:
        socket = f"{run.instance.path}/pulse/native"
        done: list[Completed] = []

        async def play_then_revert() -> list[str]:
            async with trio.open_nursery() as nursery:

                async def play() -> None:
                    done.append(
                        await hakurei.run(
                            "/bin/sh",
                            ["sh", "-c", f"{PLAY} < /dev/zero"],
                            capture_output=True,
                            text=True,
                            timeout=60,
                            **_container_kw(run.grant),  # type: ignore[arg-type]
                        )
                    )

                nursery.start_soon(play)
                deadline = time.monotonic() + STREAM_DEADLINE
                inputs = await trio.to_thread.run_sync(_wait_for_sink_input, server, deadline)
                assert len(inputs) == 1, "the stream never reached the server"
                assert inputs[0].split("\t")[1] == sink_index["null"]  # playing into the null sink
                return await trio.to_thread.run_sync(run.instance.revert)

        assert trio.run(play_then_revert) == []
        (r,) = done
        assert r.returncode != 0
        assert "Connection terminated" in r.stderr
        assert server.pactl("list", "short", "sink-inputs") == ""
        assert server.modules_naming(run.instance.id) == []
        assert not os.path.lexists(socket)
        assert not os.path.lexists(run.instance.path)


MONITOR = r"""
import json, sys, trio
from hakurei.app import config, journal, pulse, store
from hakurei.app.enable import Session

rt, env = sys.argv[1], json.loads(sys.argv[2])
st = store.Store(rt + "/hakurei", host_roots=[rt])
inst = st.create()
cfg = config.loads(sys.argv[3])
session = Session(cfg, env, inst.id, inst.path, inst.dir_fd, "/run/user/0", 0, 0, inst.journal)
p = pulse.Pulse()
p.check(session)
trio.run(p.prepare, session)
print(inst.id, flush=True)
sys.stdin.read()
"""


def test_module_of_a_killed_monitor_is_unloaded_by_gc(server: Server) -> None:
    """SIGKILL after the module is loaded: the next ``gc`` (another process) unloads it."""
    cfg = json.dumps(
        {
            "enablements": {"pulse": True},
            "container": {"shell": "/bin/sh", "home": "/home/app", "path": "/bin/sh"},
        }
    )
    monitor = subprocess.Popen(
        [sys.executable, "-c", MONITOR, server.rt, json.dumps(server.env), cfg],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert monitor.stdout is not None
        id = monitor.stdout.readline().strip()
        assert len(server.modules_naming(id)) == 1
    finally:
        monitor.kill()
        monitor.wait()
    store = Store(f"{server.rt}/hakurei", host_roots=[server.rt])
    try:
        assert store.gc() == []
    finally:
        store.close()
    assert server.modules_naming(id) == []
    assert not os.path.lexists(f"{server.rt}/hakurei/{id}")


def test_two_instances_get_two_modules_and_reverting_one_leaves_the_other(
    server: Server,
) -> None:
    with launched(server) as first, launched(server) as second:
        assert len(server.modules_naming(first.instance.id)) == 1
        assert len(server.modules_naming(second.instance.id)) == 1
        assert first.grant.ops[0].source != second.grant.ops[0].source  # type: ignore[attr-defined]
        first_socket = f"{first.instance.path}/pulse/native"
        assert first.instance.revert() == []
        assert server.modules_naming(first.instance.id) == []
        assert not os.path.lexists(first_socket)
        r = run_inside(second.grant, "pactl info")
        assert r.returncode == 0, r.stderr


def test_main_socket_is_not_visible_inside_in_instance_mode(server: Server) -> None:
    with launched(server) as run:
        main = os.stat(server.socket).st_ino
        own = os.stat(f"{run.instance.path}/pulse/native").st_ino
        r = run_inside(
            run.grant,
            f"echo inode=$(stat -c %i {RUNTIME}/pulse/native)\n"
            f"echo listing=$(ls -A {RUNTIME}/pulse)\n"
            f'test -e "{server.rt}"; echo host_runtime=$?\n'
            f'pactl -s "unix:{server.socket}" info >/dev/null 2>&1; echo main_socket=$?\n',
        )
        assert r.returncode == 0, r.stderr
        seen = dict(line.split("=", 1) for line in r.stdout.splitlines())
        assert int(seen["inode"]) == own != main
        assert (seen["listing"], seen["host_runtime"], seen["main_socket"]) == (
            "cookie native",
            "1",
            "1",
        )


def test_server_without_module_loading_gives_the_main_socket_with_a_warning(
    capfd: pytest.CaptureFixture[str],
) -> None:
    locked = Server("--disallow-module-loading")
    try:
        with launched(locked) as run:
            err = capfd.readouterr().err
            assert err.startswith("hakurei: warning: pulse: cannot load a socket of the app's own")
            assert err.count("\n") == 1
            r = run_inside(run.grant, f"stat -c %i {RUNTIME}/pulse/native && pactl info")
            assert r.returncode == 0, r.stderr
            assert int(r.stdout.split()[0]) == os.stat(locked.socket).st_ino
    finally:
        locked.stop()


def test_server_that_died_is_one_line_before_anything_is_touched() -> None:
    dead = Server()
    try:
        dead.proc.send_signal(signal.SIGKILL)  # its socket file stays behind, nobody accepts
        dead.proc.wait()
        assert os.path.exists(dead.socket)
        store = Store(f"{dead.rt}/hakurei", host_roots=[dead.rt])
        instance = store.create()
        with pytest.raises(EnableError) as e:
            pulse.Pulse().check(_session(dead, instance, "instance"))
        assert str(e.value) == (
            f"pulse: no PulseAudio server at {dead.socket} "
            "(is pulseaudio or pipewire-pulse running?)"
        )
        assert sorted(os.listdir(instance.path)) == ["journal", "lock"]  # nothing made
        assert instance.revert() == []
        store.close()
    finally:
        dead.stop()
