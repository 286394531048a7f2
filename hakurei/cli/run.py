"""``hakurei run [OPTIONS] [-- CMD ARGS...]``: an app config built from flags, then run.

hakurei's ``run``, one-user and tighter: the host's programs and libraries
read-only (``/usr``, ``/bin``, ``/sbin``, ``/lib*`` as on the host, ``/opt``
when present, an auto ``/etc``), nothing else of the user's files, and a
private persistent home per ``--id``: the host directory
``$XDG_DATA_HOME/hakurei/<id>`` (``default`` without ``--id``, made 0700)
at the user's own home path, where hakurei's ``run`` shows the user's whole
filesystem writable.  ``CMD`` is looked up in the host's ``PATH``; the
default is ``$SHELL`` (else ``/bin/sh``).  The runtime dir and ``/tmp`` are
shared by every instance of one ``--id`` unless ``--private-runtime`` /
``--private-tmpdir`` (hakurei's defaults).
"""

from __future__ import annotations

import os
import shutil
import sys

from ..errors import q
from ._table import Opt, Table, UsageError, flag, read_regular, store

ENABLE = "enablements"
BUS = "D-Bus"
OTHER = "other"
TABLE = Table(
    "run",
    (
        Opt("--id", ("ID",), OTHER, "reverse-DNS app id (keys the private home)", act=store),
        Opt("-X", (), ENABLE, "X11", act=flag),
        Opt(
            "--wayland",
            (),
            ENABLE,
            "Wayland (security context, else the filtering proxy)",
            act=flag,
        ),
        Opt(
            "--direct-wayland",
            (),
            ENABLE,
            "Wayland through the compositor's own socket (every global: a warning)",
            act=flag,
        ),
        Opt("--dbus", (), ENABLE, "the session bus, through xdg-dbus-proxy", act=flag),
        Opt("--pulse", (), ENABLE, "PulseAudio", act=flag),
        Opt(
            "--dbus-config",
            ("FILE",),
            BUS,
            "session bus rules (BusConfig JSON; default: builtin)",
            act=store,
        ),
        Opt(
            "--dbus-system", ("FILE",), BUS, "system bus rules (default: no system bus)", act=store
        ),
        Opt("--dbus-log", (), BUS, "log the proxy's decisions, prefixed (dbus)", act=flag),
        Opt("--mpris", (), BUS, "let the app own org.mpris.MediaPlayer2.ID.*", act=flag),
        Opt("--private-runtime", (), OTHER, "a runtime dir of this instance's own", act=flag),
        Opt("--private-tmpdir", (), OTHER, "a /tmp of this instance's own", act=flag),
        Opt("-v", (), OTHER, "print each step on stderr", act=flag),
    ),
)
USAGE = "usage: hakurei run [OPTIONS] [--] [CMD [ARGS...]]"
INTRO = """\
Run CMD (default: $SHELL) confined: the host's programs read-only, a private
persistent home per --id under $XDG_DATA_HOME/hakurei/, and only the host
services asked for.  Exit status: CMD's; 125 for bad input or a failed setup."""
BUS_MAX = 1 << 20


def _bus(path: str, what: str) -> object:
    import json

    raw = read_regular(path, BUS_MAX, f"{what} {q(path)}")
    try:
        return json.loads(raw.decode())
    except ValueError as e:
        raise UsageError(f"{what} {q(path)}: not JSON ({e})") from None


def _filesystem(home: str) -> list[dict[str, object]]:
    fs: list[dict[str, object]] = [{"type": "bind", "src": "/usr"}]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            fs.append({"type": "link", "dst": top, "linkname": os.readlink(top)})
        elif os.path.isdir(top):
            fs.append({"type": "bind", "src": top})
    fs.append({"type": "bind", "src": "/opt", "optional": True})
    fs.append({"type": "bind", "src": "/etc/", "special": True})
    return fs


def build(a_values: dict[str, str], flags: set[str], cmd: list[str], env: dict[str, str]) -> object:
    """The config ``run`` means, checked as any config is."""
    from ..app.check import from_json
    from ..app.config import default_session_bus
    from ..app.records import ConfigError
    from ..profile import DEFAULT_PATH, account

    app_id = a_values.get("--id", "")
    name, home = account(os.getuid())
    shell = env.get("SHELL", "")
    if not shell.startswith("/"):
        shell = "/bin/sh"
    if cmd:
        found = cmd[0] if "/" in cmd[0] else shutil.which(cmd[0], path=env.get("PATH"))
        if found is None:
            raise UsageError(f"run: {q(cmd[0])}: not found in PATH")
        path, args = os.path.abspath(found), [cmd[0], *cmd[1:]]
    else:
        path, args = shell, [shell]
    session: object = None
    if "--dbus-config" in a_values and a_values["--dbus-config"] != "builtin":
        session = _bus(a_values["--dbus-config"], "--dbus-config")
    elif "--dbus" in flags:
        rules = default_session_bus(app_id).to_json()
        if "--mpris" not in flags:
            rules["own"] = [n for n in rules["own"] if not n.startswith("org.mpris.")]
        elif not app_id:
            raise UsageError(
                "run: --mpris needs --id (the name owned is org.mpris.MediaPlayer2.ID.*)"
            )
        session = rules
    system: object = None
    if a_values.get("--dbus-system", "nil") != "nil":
        system = _bus(a_values["--dbus-system"], "--dbus-system")
    if "--dbus-log" in flags:
        for bus in (session, system):
            if isinstance(bus, dict):
                bus["log"] = True
    value = {
        "id": app_id,
        "enablements": {
            "wayland": "--wayland" in flags or "--direct-wayland" in flags,
            "x11": "-X" in flags,
            "dbus": "--dbus" in flags,
            "pulse": "--pulse" in flags,
        },
        "session_bus": session,
        "system_bus": system,
        "direct_wayland": "--direct-wayland" in flags,
        "container": {
            "env": {"PATH": DEFAULT_PATH},
            "filesystem": _filesystem(home),
            "username": name,
            "shell": shell,
            "home": home,
            "path": path,
            "args": args,
            "share_runtime": "--private-runtime" not in flags,
            "share_tmpdir": "--private-tmpdir" not in flags,
        },
    }
    try:
        return from_json(value)
    except ConfigError as e:
        raise UsageError(f"run: {e}") from None


def main(argv: list[str]) -> int:
    try:
        a = TABLE.parse(argv)
        cmd = [a.program, *a.args]
    except UsageError as e:
        if "no PROGRAM given" not in str(e):
            raise
        a, cmd = TABLE.parse(argv, program=False), []
    if a.help:
        if sys.stdout is not None:
            sys.stdout.write(TABLE.help(USAGE, INTRO, (ENABLE, BUS, OTHER)))
        return 0
    from ..app.monitor import Launch, SetupFailed, launch
    from ..app.records import Config

    config = build(a.values, a.flags, cmd, dict(os.environ))
    assert isinstance(config, Config)
    if sys.stdout is not None:
        sys.stdout.flush()
    try:
        return launch(Launch(config, verbose="-v" in a.flags))
    except SetupFailed as e:
        return e.status  # init said why on the same stderr: once is enough
