"""Real desktop services for the launcher's tests, each started as the test user and stopped.

Every service gets private temp dirs (its own runtime dir, home, sockets)
and is waited for by a real signal, never a bare sleep: Xvfb writes its
display number to ``-displayfd`` once it accepts clients; ``dbus-daemon``
prints its address once it listens; a bus name is there when the bus says
it has an owner; pulseaudio is ready when ``pactl info`` answers; a
compositor is ready when a connect to its socket succeeds.  Where polling
is the only signal it is done with a deadline.  Each context manager stops
what it started (SIGTERM first, so Xvfb removes its socket and lock file).

This is a helper module for ``test_app_*.py``, not a test file.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DEADLINE = 30.0


def wait_line(proc: subprocess.Popen[bytes], what: str, deadline: float = DEADLINE) -> str:
    """The first line ``proc`` prints on its stdout pipe, within ``deadline``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    end = time.monotonic() + deadline
    while b"\n" not in data:
        left = end - time.monotonic()
        assert left > 0, f"{what}: no line printed within {deadline} s"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"{what} exited: {proc.wait()}"
            data += chunk
    return data.split(b"\n", 1)[0].decode()


def wait_for_socket(
    path: Path, proc: subprocess.Popen[bytes], what: str, deadline: float = DEADLINE
) -> None:
    """Until a connect to ``path`` succeeds (the server accepts clients), or fail."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(path))
                return
            except (FileNotFoundError, ConnectionRefusedError):
                pass
        time.sleep(0.05)  # polling a connect: the server gives no other readiness signal
    raise AssertionError(f"no {what} socket at {path} after {deadline} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def short_tmp(prefix: str) -> str:
    """A private temp dir with a short path: socket paths below it must fit in 108 bytes."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


# --- X11 -----------------------------------------------------------------------------------


@dataclass
class Display:
    number: int
    #: the user's Xauthority file, with a FamilyLocal entry for this host (as xauth writes it)
    authority: str
    tmp: str
    cookie: str

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": f":{self.number}", "XAUTHORITY": self.authority}

    def colours(self) -> int:
        """How many different colours the screen shows now (``xwd`` + ImageMagick)."""
        env = {**os.environ, **self.env}
        shot = subprocess.run(["xwd", "-root", "-silent"], env=env, capture_output=True, check=True)
        count = subprocess.run(
            ["convert", "xwd:-", "-format", "%k", "info:"],
            input=shot.stdout,
            capture_output=True,
            check=True,
        )
        return int(count.stdout)


@contextmanager
def xvfb(screen: str = "320x240x24") -> Iterator[Display]:
    """``Xvfb -noreset -displayfd`` with a fresh cookie in its and the user's Xauthority."""
    tmp = tempfile.mkdtemp(prefix="hk-x11-")
    cookie = secrets.token_hex(16)
    server_auth, user_auth = f"{tmp}/server.xauth", f"{tmp}/user.xauth"
    # The server loads every cookie in its file whatever display it names.
    subprocess.run(["xauth", "-q", "-f", server_auth, "add", ":0", ".", cookie], check=True)
    r, w = os.pipe()
    server = subprocess.Popen(
        [
            *("Xvfb", "-displayfd", str(w), "-noreset", "-nolisten", "tcp"),
            *("-auth", server_auth, "-br", "-screen", "0", screen),
        ],
        pass_fds=[w],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], DEADLINE)
        line = os.read(r, 64) if ready else b""
        if not line.strip().isdigit():
            server.kill()
            pytest.fail(f"Xvfb did not start: {server.communicate()[1].decode()[-2000:]}")
        number = int(line)
        subprocess.run(
            ["xauth", "-q", "-f", user_auth, "add", f":{number}", ".", cookie], check=True
        )
        yield Display(number, user_auth, tmp, cookie)
    finally:
        os.close(r)
        _stop(server)  # SIGTERM: Xvfb removes its socket and lock file on the way out
        if server.stderr is not None:
            server.stderr.close()
        shutil.rmtree(tmp, ignore_errors=True)


# --- D-Bus ----------------------------------------------------------------------------------


@dataclass
class Bus:
    """A private bus and the services on it, all stopped at the end."""

    address: str
    path: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"DBUS_SESSION_BUS_ADDRESS": self.address, "PATH": os.environ["PATH"]}

    def has_owner(self, name: str) -> bool:
        out = subprocess.run(
            ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/",
             "org.freedesktop.DBus.NameHasOwner", f"string:{name}"],
            env=self.env, capture_output=True, text=True, timeout=DEADLINE, check=True,
        ).stdout  # fmt: skip
        return "boolean true" in out

    def echo(self, name: str) -> None:
        """``dbus-test-tool echo --name=NAME``, returned once the bus lists the name."""
        self.procs.append(
            subprocess.Popen(["dbus-test-tool", "echo", f"--name={name}"], env=self.env)
        )
        end = time.monotonic() + DEADLINE
        while not self.has_owner(name):
            assert self.procs[-1].poll() is None, f"echo {name} exited"
            assert time.monotonic() < end, f"{name} never appeared on the bus"
            time.sleep(0.02)  # polling the bus for the name, with a deadline


@contextmanager
def private_bus(address: str | None = None) -> Iterator[Bus]:
    """``dbus-daemon --session`` on a socket in a private temp dir (or at ``address``)."""
    with tempfile.TemporaryDirectory(prefix="hk-dbus-") as tmp:
        path = os.path.join(tmp, "bus")
        daemon = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1",
             f"--address={address or f'unix:path={path}'}"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        bus = Bus(wait_line(daemon, "dbus-daemon"), path, [daemon])
        try:
            yield bus
        finally:
            for proc in reversed(bus.procs):
                proc.kill()
                proc.wait()
            assert daemon.stdout is not None
            daemon.stdout.close()


# --- PulseAudio -----------------------------------------------------------------------------

PULSE_DEADLINE = 20.0


class Pulse:
    """One pulseaudio of our own (own runtime dir and home, so own socket and cookie), a null
    sink; stopped by ``stop``."""

    def __init__(self, *extra: str) -> None:
        # Short: the socket paths below it must fit in sun_path (107 bytes).
        self.top = short_tmp("hk-pa-")
        self.rt, self.home = f"{self.top}/run", f"{self.top}/home"
        os.mkdir(self.rt, 0o700)
        os.mkdir(self.home, 0o700)
        self.env = {"HOME": self.home, "XDG_RUNTIME_DIR": self.rt, "PATH": "/usr/bin:/bin"}
        self.log = f"{self.top}/pulseaudio.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    "pulseaudio",
                    "-n",
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "--load=module-native-protocol-unix",
                    "--load=module-null-sink sink_name=null",
                    *extra,
                ],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + PULSE_DEADLINE
        while self.run_pactl("info").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log, errors="replace") as f:
                    pytest.fail(f"pulseaudio did not come up:\n{f.read()[-2000:]}")
            time.sleep(0.05)  # polling with a deadline: the readiness signal is pactl's answer

    @property
    def socket(self) -> str:
        return f"{self.rt}/pulse/native"

    def run_pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args],
            env={**self.env, "LC_ALL": "C"},
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def pactl(self, *args: str) -> str:
        done = self.run_pactl(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def modules_naming(self, id: str) -> list[str]:
        return [line for line in self.pactl("list", "short", "modules").splitlines() if id in line]

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.top, ignore_errors=True)


@contextmanager
def pulseaudio(*extra: str) -> Iterator[Pulse]:
    server = Pulse(*extra)
    try:
        yield server
    finally:
        server.stop()


# --- Wayland --------------------------------------------------------------------------------


#: What wlroots compositors offer that a confined app must not get (issue 8's list): the filtering
#: proxy hides them all.
PRIVILEGED = (
    "zwlr_screencopy_manager_v1",
    "zwlr_export_dmabuf_manager_v1",
    "zwlr_data_control_manager_v1",
    "zwp_virtual_keyboard_manager_v1",
    "zwlr_virtual_pointer_manager_v1",
    "zwlr_foreign_toplevel_manager_v1",
    "zwlr_output_manager_v1",
    "zwlr_gamma_control_manager_v1",
    "zwlr_layer_shell_v1",
    "ext_session_lock_manager_v1",
    "zwp_input_method_manager_v2",
)


@dataclass
class Compositor:
    #: the listening socket
    socket: Path
    #: the compositor's own runtime dir (``socket``'s parent)
    runtime: Path
    #: its log (stdout and stderr)
    log: Path
    #: its environment (to run clients of it on the host, e.g. ``swaymsg``)
    env: dict[str, str]


@contextmanager
def _compositor(argv: list[str], name: str, what: str, **env: str) -> Iterator[Compositor]:
    top = Path(short_tmp(f"hk-{what}."))
    runtime = top / "rt"
    runtime.mkdir(mode=0o700)
    full = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime), "HOME": str(top), **env}
    log = top / f"{what}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, env=full, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=top
        )
    try:
        wait_for_socket(runtime / name, proc, what)
        yield Compositor(runtime / name, runtime, log, full)
    finally:
        _stop(proc)
        shutil.rmtree(top, ignore_errors=True)


@contextmanager
def weston(name: str = "wayland-hk") -> Iterator[Compositor]:
    """A headless weston listening at ``$XDG_RUNTIME_DIR/NAME`` (reference launcher.md §6.1)."""
    argv = ["weston", "--backend=headless-backend.so", f"--socket={name}", "--idle-time=0"]
    with _compositor(argv, name, "weston") as c:
        yield c


@contextmanager
def sway() -> Iterator[Compositor]:
    """A headless sway (pixman renderer, no input devices), one 1024x768 output.

    sway picks the socket name itself: the first free ``wayland-N`` in its own
    empty runtime dir, ``wayland-1`` (reference launcher.md §6.1).
    """
    top_config = Path(short_tmp("hk-swaycfg."))
    config = top_config / "config"
    config.write_text("output HEADLESS-1 resolution 1024x768\n")
    try:
        with _compositor(
            ["sway", "-c", str(config)],
            "wayland-1",
            "sway",
            WLR_BACKENDS="headless",
            WLR_RENDERER="pixman",
            WLR_LIBINPUT_NO_DEVICES="1",
        ) as c:
            socks = list(c.runtime.glob("sway-ipc.*.sock"))
            if socks:
                c.env["SWAYSOCK"] = str(socks[0])
            yield c
    finally:
        shutil.rmtree(top_config, ignore_errors=True)
