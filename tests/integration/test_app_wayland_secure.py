"""Wayland's security-context mode through the real launcher, against a compositor that offers it.

No compositor in Debian 12 implements ``wp_security_context_manager_v1``, so
these tests start ``fake_compositor.py`` (stdlib; it records what it is sent
and which clients connect how, and hides privileged globals from clients of
a security-context listener as a real one does).  The app is a small
stdlib Wayland client run confined by ``hakurei app``: it connects to
``$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY`` inside and prints the globals it is
offered.  The launcher's side is observed from the compositor's record.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import desktop
import pytest

from hakurei.cli.run import _filesystem

DEADLINE = 20.0
HERE = Path(__file__).parent
#: The app: a Wayland client in the container's own python, printing the offered globals.
CLIENT = r"""
import os, socket, struct, sys
path = os.path.join(os.environ["XDG_RUNTIME_DIR"], os.environ["WAYLAND_DISPLAY"])
s = socket.socket(socket.AF_UNIX)
s.connect(path)
def msg(obj, op, payload):
    return struct.pack("=II", obj, (8 + len(payload)) << 16 | op) + payload
s.sendall(msg(1, 1, struct.pack("=I", 2)) + msg(1, 0, struct.pack("=I", 3)))
buf, names = b"", []
while True:
    buf += s.recv(4096)
    while len(buf) >= 8:
        obj, word = struct.unpack_from("=II", buf)
        size, op = word >> 16, word & 0xFFFF
        if len(buf) < size:
            break
        body, buf = buf[8:size], buf[size:]
        if obj == 2 and op == 0:
            n = struct.unpack_from("=I", body, 4)[0]
            names.append(body[8:8 + n - 1].decode())
        if obj == 3:
            print(" ".join(sorted(names)), flush=True)
            if len(sys.argv) > 1:
                os.read(0, 1)  # hold the connection until stdin closes
            sys.exit(0)
"""


class Compositor:
    """``fake_compositor.py`` at ``<runtime>/wayland-0``, and what it recorded."""

    def __init__(self, runtime: Path) -> None:
        self.path = runtime / "wayland-0"
        self.record = runtime.parent / "record.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_compositor.py"), str(self.path), str(self.record)]
        )
        self.wait_for(lambda events: any(e["event"] == "ready" for e in events), "ready")

    def events(self) -> list[dict[str, Any]]:
        try:
            lines = self.record.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines]

    def wait_for(self, done: Any, what: str) -> list[dict[str, Any]]:
        end = time.monotonic() + DEADLINE
        while not done(events := self.events()):
            assert self.proc.poll() is None, "the compositor exited"
            assert time.monotonic() < end, f"compositor: no {what} in {DEADLINE} s: {events}"
            time.sleep(0.01)  # polling the compositor's record, with a deadline
        return events

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(desktop.short_tmp("hk-wls."))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def box(short_tmp: Path) -> Iterator[tuple[Compositor, dict[str, str], Path]]:
    tmp_path = short_tmp
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_DATA_HOME": str(home / "data"),
    }
    compositor = Compositor(runtime)
    try:
        yield compositor, env, tmp_path
    finally:
        compositor.stop()


def config(tmp: Path, *args: str) -> str:
    path = tmp / "app.json"
    path.write_text(
        json.dumps(
            {
                "id": "org.example.Secure",
                "enablements": {"wayland": True},
                "container": {
                    "shell": "/bin/sh",
                    "home": "/home/app",
                    "path": "/usr/bin/python3",
                    "args": ["python3", "-c", CLIENT, *args],
                    "filesystem": _filesystem("/home/app"),
                    "username": "app",
                },
            }
        )
    )
    return str(path)


def hakurei(env: dict[str, str], *args: str, **kw: Any) -> subprocess.Popen[str]:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "hakurei", *args], env=env, text=True, **kw)


def test_the_app_connects_through_a_security_context_of_its_own_and_sees_no_privileged_global(
    box: tuple[Compositor, dict[str, str], Path],
) -> None:
    compositor, env, tmp = box
    launcher = hakurei(env, "app", config(tmp))
    out, err = launcher.communicate(timeout=DEADLINE)
    assert (launcher.returncode, err) == (0, "")
    # Through the listener the compositor hid the manager and screencopy.
    assert out == "wl_compositor wl_shm xdg_wm_base\n"
    events = compositor.wait_for(lambda ev: ev[-1]["event"] == "hangup", "hangup")
    listener = next(e for e in events if e["event"] == "listener")
    assert listener["engine"] == "app.hakurei"
    assert listener["app_id"] == "org.example.Secure"
    assert re.fullmatch(r"[0-9a-f]{32}", listener["instance_id"])
    vias = [e["via"] for e in events if e["event"] == "client"]
    assert vias == ["main", "main", "listener"]  # the mode's check, the listener, the app
    # The socket was the instance's own, and went with it.
    assert not list((tmp / "runtime").glob("hakurei/*/wayland"))


def test_the_listener_hangs_up_when_the_launcher_is_sigkilled_and_gc_removes_the_socket(
    box: tuple[Compositor, dict[str, str], Path],
) -> None:
    compositor, env, tmp = box
    launcher = hakurei(env, "app", config(tmp, "hold"), stdin=subprocess.PIPE)
    assert launcher.stdout is not None
    assert launcher.stdout.readline() == "wl_compositor wl_shm xdg_wm_base\n"
    [socket] = list((tmp / "runtime").glob("hakurei/*/wayland"))
    assert compositor.events()[-1]["event"] != "hangup"
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    compositor.wait_for(lambda ev: ev[-1]["event"] == "hangup", "hangup after SIGKILL")
    assert socket.exists()  # the journal's to remove, by the next gc
    gc = hakurei(env, "gc")
    assert gc.communicate(timeout=DEADLINE) == ("", "") and gc.returncode == 0
    assert not socket.exists()
    assert launcher.stdin is not None
    launcher.stdin.close()


def test_a_compositor_that_cannot_be_asked_is_refused_in_one_line(short_tmp: Path) -> None:
    tmp_path = short_tmp
    # A plain socket that is no compositor: connecting works, the registry never comes.
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime)}
    import socket as _socket

    listener = _socket.socket(_socket.AF_UNIX)
    listener.bind(str(runtime / "wayland-0"))
    listener.listen(1)
    listener.close()  # nobody accepts: a connection is refused
    launcher = hakurei(env, "app", config(tmp_path))
    _, err = launcher.communicate(timeout=DEADLINE)
    assert launcher.returncode == 125
    assert err.count("\n") == 1 and err.startswith("hakurei: wayland: cannot connect to ")
    assert os.listdir(runtime / "hakurei") == ["lock"]  # no instance was made
