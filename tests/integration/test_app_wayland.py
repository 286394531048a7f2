"""Direct Wayland with a real compositor: a confined client connects, lists globals, draws.

Each test starts its own headless weston (reference launcher.md §6.1) as the
test user, with a private runtime directory, and waits for its socket by
connecting to it (no sleep).  The app's container is what the launcher will
build around an enablement: the default profile, a private 0700 tmpfs at
``/run/user/<uid>``, then the Grant's ops and environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import desktop
import pytest

import hakurei
from hakurei.app.check import from_json
from hakurei.app.config import template
from hakurei.app.enable import EnableError, Grant, Session
from hakurei.app.wayland import Wayland
from hakurei.ops import Ops
from hakurei.profile import default_env, default_profile

UID, GID = os.getuid(), os.getgid()
RUNTIME = f"/run/user/{UID}"
NAME = "wayland-hk"


@pytest.fixture
def weston() -> Iterator[Path]:
    """A headless weston listening at the returned socket path."""
    with desktop.weston(NAME) as c:
        yield c.socket


def session(host_env: dict[str, str], direct: bool = True) -> Session:
    c = template().to_json()
    c["enablements"] = {"wayland": True}
    c["direct_wayland"] = direct
    return Session(
        config=from_json(c),
        host_env=host_env,
        instance_id="0" * 32,
        instance_dir="/nonexistent",
        instance_dir_fd=-1,
        runtime=RUNTIME,
        uid=UID,
        gid=GID,
        journal=None,  # type: ignore[arg-type]  # no host action: never written
    )


async def confined(grant: Grant, script: str) -> hakurei.Completed:
    """``sh -c script`` in a launcher-like container holding ``grant``."""
    profile = default_profile(UID, GID)
    profile.extend(Ops().tmpfs("/run/user", 0, 0o755).tmpfs(RUNTIME, 0, 0o700))
    profile.extend(grant.ops)
    env = {**default_env(), "XDG_RUNTIME_DIR": RUNTIME, **grant.env}
    return await hakurei.run(
        "/bin/sh",
        ["sh", "-c", script],
        ops=profile.finish(),
        env=env,
        uid=UID,
        gid=GID,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_confined_client_draws_frames_on_the_compositor(
    weston: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    s = session({"XDG_RUNTIME_DIR": str(weston.parent), "WAYLAND_DISPLAY": NAME})
    enablement = Wayland()
    enablement.check(s)
    grant = await enablement.prepare(s)
    warning = capfd.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith("hakurei: warning: direct Wayland:")
    assert "screencopy" in warning and "inject input" in warning
    assert grant.env == {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}
    # Each commit after the first answers a frame callback from weston: five
    # commits are four frames drawn.  grep exits at the fifth; the client then
    # dies of SIGPIPE on its next debug line.
    script = (
        f"ls -A {RUNTIME}; "
        "WAYLAND_DEBUG=client weston-simple-shm 2>&1 | grep -c -m 5 'wl_surface@[0-9]*\\.commit()'"
    )
    r = await confined(grant, script)
    assert (r.returncode, r.stdout) == (0, "wayland-0\n5\n"), r.stderr


@pytest.mark.parametrize("how", ["relative", "absolute", "unset"])
async def test_the_socket_is_found_as_libwayland_finds_it(weston: Path, how: str) -> None:
    elsewhere = weston.parent.parent / "other"
    elsewhere.mkdir(mode=0o700)
    if how == "relative":
        host_env = {"XDG_RUNTIME_DIR": str(weston.parent), "WAYLAND_DISPLAY": NAME}
    elif how == "absolute":  # XDG_RUNTIME_DIR plays no part: it points elsewhere
        host_env = {"XDG_RUNTIME_DIR": str(elsewhere), "WAYLAND_DISPLAY": str(weston)}
    else:  # unset: wayland-0 under XDG_RUNTIME_DIR (a link to weston's socket here)
        (elsewhere / "wayland-0").symlink_to(weston)
        host_env = {"XDG_RUNTIME_DIR": str(elsewhere)}
    s = session(host_env)
    Wayland().check(s)
    grant = await Wayland().prepare(s)
    r = await confined(grant, "wayland-info")
    assert r.returncode == 0, r.stderr
    assert "'wl_compositor'" in r.stdout and "'xdg_wm_base'" in r.stdout


async def test_a_missing_socket_is_refused_in_one_line(tmp_path: Path) -> None:
    s = session({"XDG_RUNTIME_DIR": str(tmp_path), "WAYLAND_DISPLAY": "wayland-9"})
    with pytest.raises(EnableError) as e:
        Wayland().check(s)
    assert str(e.value) == (
        f"wayland: compositor socket {tmp_path}/wayland-9: does not exist "
        "(is a Wayland compositor running, and WAYLAND_DISPLAY right?)"
    )
    with pytest.raises(EnableError):
        await Wayland().prepare(s)


def test_without_direct_wayland_a_compositor_without_security_context_gets_the_proxy(
    weston: Path,
) -> None:
    s = session({"XDG_RUNTIME_DIR": str(weston.parent), "WAYLAND_DISPLAY": NAME}, direct=False)
    enablement = Wayland()
    enablement.check(s)
    assert enablement.mode == "proxy"
