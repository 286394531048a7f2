"""The filtering Wayland proxy in front of real compositors (sway and weston, headless).

Each test starts its own compositor as the test user with a private runtime
directory (reference launcher.md §6.1) and the proxy as a subprocess,
``python -m hakurei.app.wlproxy``, on a listening socket this test made and
passed down by fd, as the launcher will.  Clients run on the host with
``WAYLAND_DISPLAY`` pointing at the proxy; each check is also made directly
against the compositor, so a proxy that filtered nothing would fail it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import desktop
import pytest
from desktop import Compositor

import hakurei
from hakurei.ops import Ops
from hakurei.profile import default_env, default_profile

#: The privileged globals sway 1.7 offers (it has no session lock; a unit test covers that one).
PRIVILEGED = set(desktop.PRIVILEGED) - {"ext_session_lock_manager_v1"}
CORE = {"wl_compositor", "wl_shm", "wl_seat", "wl_output", "xdg_wm_base"}


def wait_until(what: str, ok: object, deadline: float = 30.0) -> None:
    """Poll ``ok()`` (no readiness signal exists for these) until true, or fail."""
    end = time.monotonic() + deadline
    while not ok():  # type: ignore[operator]
        assert time.monotonic() < end, f"no {what} after {deadline} s"
        time.sleep(0.05)


def client_env(comp: Compositor, display: Path) -> dict[str, str]:
    """A client of ``comp`` on the host, connecting to ``display`` (direct, or a proxy)."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(comp.runtime.parent),
        "XDG_RUNTIME_DIR": str(comp.runtime),
        "WAYLAND_DISPLAY": str(display),
    }


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A private temp dir with a short path: a socket path must fit in 108 bytes."""
    path = Path(desktop.short_tmp("hk-wlp."))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def sway() -> Iterator[Compositor]:
    with desktop.sway() as comp:
        wait_until("sway IPC socket", lambda: any(comp.runtime.glob("sway-ipc.*.sock")))
        yield comp


@pytest.fixture
def weston() -> Iterator[Compositor]:
    with desktop.weston() as comp:
        yield comp


def proxy_for(comp: Compositor, *extra: str) -> Iterator[Path]:
    """The proxy as its own process, on a listening socket handed down as fd."""
    path = comp.runtime.parent / "proxy"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    fd = listener.fileno()
    argv = [sys.executable, "-m", "hakurei.app.wlproxy", "--listen-fd", str(fd)]
    with open(comp.runtime.parent / "proxy.log", "wb") as log:
        proc = subprocess.Popen(
            [*argv, "--upstream", str(comp.socket), *extra],
            pass_fds=[fd],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    listener.close()  # the proxy holds it now; connects queue in its backlog until it runs
    try:
        yield path
        assert proc.poll() is None, "the proxy died"
    finally:
        stop(proc)


@pytest.fixture
def sway_proxy(sway: Compositor) -> Iterator[Path]:
    yield from proxy_for(sway)


@pytest.fixture
def weston_proxy(weston: Compositor) -> Iterator[Path]:
    yield from proxy_for(weston)


def client(
    comp: Compositor, display: Path, *argv: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env=client_env(comp, display),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def interfaces(comp: Compositor, display: Path) -> set[str]:
    r = client(comp, display, "wayland-info")
    assert r.returncode == 0, r.stderr
    return set(re.findall(r"interface: '([^']+)'", r.stdout))


def test_wayland_info_through_the_proxy_lists_no_privileged_global(
    sway: Compositor, sway_proxy: Path
) -> None:
    direct = interfaces(sway, sway.socket)
    assert direct >= PRIVILEGED, PRIVILEGED - direct  # sway offers them all...
    proxied = interfaces(sway, sway_proxy)
    assert not proxied & PRIVILEGED  # ...and the proxied client sees none of them
    assert proxied >= CORE
    assert proxied < direct


def test_grim_cannot_capture_the_screen_through_the_proxy(
    sway: Compositor, sway_proxy: Path, short_tmp: Path
) -> None:
    r = client(sway, sway.socket, "grim", str(short_tmp / "direct.png"))
    assert r.returncode == 0, r.stderr
    assert (short_tmp / "direct.png").stat().st_size > 0
    r = client(sway, sway_proxy, "grim", str(short_tmp / "proxied.png"))
    assert r.returncode != 0
    assert "screencopy" in r.stderr
    assert not (short_tmp / "proxied.png").exists()


def colours(comp: Compositor, png: Path) -> int:
    r = client(comp, comp.socket, "grim", str(png))
    assert r.returncode == 0, r.stderr
    out = subprocess.run(
        ["identify", "-format", "%k", str(png)], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_foot_maps_and_draws_a_window_through_the_proxy(
    sway: Compositor, sway_proxy: Path, short_tmp: Path
) -> None:
    empty = colours(sway, short_tmp / "before.png")
    env = {**client_env(sway, sway_proxy), "TERM": "xterm"}
    foot = subprocess.Popen(
        ["foot", "--app-id=proxied-foot", "--", "sh", "-c", "echo hello from the proxy; sleep 60"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ipc = str(next(sway.runtime.glob("sway-ipc.*.sock")))

        def mapped() -> bool:
            assert foot.poll() is None, f"foot exited with {foot.returncode}"
            tree = subprocess.run(
                ["swaymsg", "-s", ipc, "-t", "get_tree"], capture_output=True, text=True
            ).stdout
            return '"app_id": "proxied-foot"' in tree

        wait_until("foot window", mapped)
        wait_until("drawn window", lambda: colours(sway, short_tmp / "after.png") > empty + 1)
    finally:
        stop(foot)


def test_weston_simple_shm_renders_frames_through_the_proxy(
    weston: Compositor, weston_proxy: Path
) -> None:
    # Each commit after the first answers a frame callback: five commits are
    # four frames drawn.  grep exits at the fifth; the client then dies of
    # SIGPIPE on its next debug line.
    script = (
        "WAYLAND_DEBUG=client weston-simple-shm 2>&1 | grep -c -m 5 'wl_surface@[0-9]*\\.commit()'"
    )
    r = client(weston, weston_proxy, "sh", "-c", script)
    assert (r.returncode, r.stdout) == (0, "5\n"), r.stderr


def test_an_allowlist_without_shm_leaves_weston_simple_shm_nothing_to_draw_with(
    weston: Compositor,
) -> None:
    gen = proxy_for(
        weston, "--no-default-allow", "--allow", "wl_compositor", "--allow", "xdg_wm_base"
    )
    path = next(gen)
    try:
        r = client(weston, path, "weston-simple-shm", timeout=30)
        assert r.returncode != 0
        assert {"wl_compositor", "xdg_wm_base"} == interfaces(weston, path)
    finally:
        gen.close()


async def test_a_confined_client_sees_the_filtered_registry_at_wayland_0(
    sway: Compositor, sway_proxy: Path
) -> None:
    """The launcher's shape: the proxy socket bound at /run/user/<uid>/wayland-0."""
    uid, gid = os.getuid(), os.getgid()
    runtime = f"/run/user/{uid}"
    profile = default_profile(uid, gid)
    profile.extend(Ops().tmpfs("/run/user", 0, 0o755).tmpfs(runtime, 0, 0o700))
    profile.extend(Ops().bind(str(sway_proxy), f"{runtime}/wayland-0"))
    env = {**default_env(), "XDG_RUNTIME_DIR": runtime, "WAYLAND_DISPLAY": "wayland-0"}
    script = "ls -A $XDG_RUNTIME_DIR; wayland-info; grim /tmp/x.png; echo grim=$?"
    r = await hakurei.run(
        "/bin/sh",
        ["sh", "-c", script],
        ops=profile.finish(),
        env=env,
        uid=uid,
        gid=gid,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("wayland-0\n")
    seen = set(re.findall(r"interface: '([^']+)'", r.stdout))
    assert seen >= CORE and not seen & PRIVILEGED
    assert r.stdout.endswith("grim=1\n") and "screencopy" in r.stderr
