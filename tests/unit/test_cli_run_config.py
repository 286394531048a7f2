"""``hakurei run``'s flags as the app config they build (nothing is started)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hakurei.app.records import BindFS, Config, LinkFS
from hakurei.cli._table import UsageError
from hakurei.cli.run import build

ENV = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "HOME": "/home/me"}


def config(values: dict[str, str], flags: set[str], cmd: list[str] | None = None) -> Config:
    got = build(values, flags, cmd or [], ENV)
    assert isinstance(got, Config)
    return got


def test_run_shows_the_hosts_programs_read_only_and_nothing_of_the_users_files() -> None:
    c = config({"--id": "org.x.Y"}, set())
    fs = c.container.filesystem
    binds = [e for e in fs if isinstance(e, BindFS)]
    assert binds[0] == BindFS("/usr")
    assert all(not (e.write or e.dev or e.ensure) for e in binds)
    assert BindFS("/etc/", special=True) in binds
    assert not any(e.special and e.target == "/" for e in binds)  # no autoroot
    links = {e.dst for e in fs if isinstance(e, LinkFS)}
    bound = {e.src for e in binds}
    for top in ("/bin", "/lib"):
        if os.path.exists(top):
            assert top in links | bound
    assert (c.id, c.container.path, c.container.args) == ("org.x.Y", "/bin/sh", ("/bin/sh",))


def test_cmd_is_looked_up_in_path_and_args_kept() -> None:
    c = config({}, set(), ["sh", "-c", "true"])
    assert c.container.path == "/usr/bin/sh" or c.container.path == "/bin/sh"
    assert c.container.args == ("sh", "-c", "true")
    with pytest.raises(UsageError, match="not found in PATH"):
        config({}, set(), ["no-such-command-anywhere"])


def test_enablement_flags_and_the_shared_dirs_follow_hakureis_run() -> None:
    c = config({"--id": "org.x.Y"}, {"-X", "--pulse", "--private-tmpdir"})
    e = c.enablements
    assert (e.x11, e.pulse, e.dbus, e.wayland) == (True, True, False, False)
    assert (c.container.share_runtime, c.container.share_tmpdir) == (True, False)


def test_builtin_session_bus_owns_mpris_only_with_mpris() -> None:
    plain = config({"--id": "org.x.Y"}, {"--dbus"})
    assert plain.session_bus is not None
    assert plain.session_bus.own == ("org.x.Y.*",)
    mpris = config({"--id": "org.x.Y"}, {"--dbus", "--mpris", "--dbus-log"})
    assert mpris.session_bus is not None
    assert mpris.session_bus.own == ("org.x.Y.*", "org.mpris.MediaPlayer2.org.x.Y.*")
    assert mpris.session_bus.log
    with pytest.raises(UsageError, match="--mpris needs --id"):
        config({}, {"--dbus", "--mpris"})


def test_bus_config_files_are_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "bus.json"
    good.write_text(json.dumps({"talk": ["org.freedesktop.Notifications"], "filter": True}))
    c = config({"--dbus-config": str(good), "--dbus-system": str(good)}, {"--dbus"})
    assert c.session_bus is not None and c.system_bus is not None
    assert c.system_bus.talk == ("org.freedesktop.Notifications",)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"talk": ["org"]}))
    with pytest.raises(UsageError, match=r"^run: session_bus\.talk"):
        config({"--dbus-config": str(bad)}, {"--dbus"})


def test_wayland_is_the_safe_mode_and_direct_only_when_asked() -> None:
    safe = config({}, {"--wayland"})
    assert (safe.enablements.wayland, safe.direct_wayland) == (True, False)
    direct = config({}, {"--direct-wayland"})
    assert (direct.enablements.wayland, direct.direct_wayland) == (True, True)
