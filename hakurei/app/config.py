"""The launcher's app config: hakurei's JSON (``hst.Config``), typed and validated.

A config says which app to run, in which container, with which host
services (``enablements``).  It is read from JSON, checked completely, and
only then handed on: nothing in it may reach the host (a D-Bus proxy, a
mount, a file) unchecked, because a bad value found half-way through a launch
leaves work to undo (reference launcher.md §7: bad bus names used to surface
as a proxy dying at start, bad env keys as a failed exec).

The shape is hakurei's, so its configs and ``hakurei template`` output stay
familiar, with the one-user differences of issue 7:

* no setuid helper, so no other uid: ``groups`` and ``extra_perms`` must be
  empty and ``map_real_uid`` may only be true (the app runs as your own uid,
  which D-Bus clients need anyway); ``identity`` is only the key of the
  instance's state-store segment and shared directories;
* ``x11_cookie`` (``untrusted`` by default) and ``pulse_socket``
  (``instance`` by default: a per-instance server socket, revoked at exit);
* ``version``: the on-disk format is frozen at :data:`VERSION`.  A config
  without it is read as version 1 (hakurei's own configs carry none); a
  dumped config always carries it; any other version is refused, so a later
  format can never be misread as this one.

Every problem is a :class:`ConfigError` naming the key path
(``container.filesystem[2].dst``) or, for JSON syntax, the line and column:
one line, exit status 125 from the CLI, never a traceback.

Records are frozen dataclasses: this is not the init path (see
hakurei/cli/__init__.py: only the launcher's subcommands import it).
"""

from __future__ import annotations

import json

from ..errors import q
from .check import bus_name_problem, from_json, rule_problem
from .records import (
    _CONTAINER_FLAGS,
    CONFIG_MAX,
    HOST_NAME_MAX,
    IDENTITY_MAX,
    INT64_MAX,
    LOGIN_NAME_MAX,
    PATH_MAX,
    PULSE_SOCKETS,
    VERSION,
    WAIT_DELAY_DEFAULT,
    WAIT_DELAY_MAX,
    X11_COOKIES,
    BindFS,
    BusConfig,
    Config,
    ConfigError,
    ContainerConfig,
    Enablements,
    EphemeralFS,
    FilesystemEntry,
    LinkFS,
    OverlayFS,
    default_session_bus,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# -- reading JSON ----------------------------------------------------------------------


def loads(data: str | bytes) -> Config:
    """A config from JSON text: syntax errors give their line and column."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError("config", f"not UTF-8 text (byte {e.start})") from None
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ConfigError(f"line {e.lineno} column {e.colno}", e.msg) from None
    except RecursionError:
        raise ConfigError("config", "JSON nested too deeply") from None
    return from_json(value)


def load_file(path: str) -> Config:
    """A config from the file ``path``, or from stdin for ``-`` (hakurei's ``CONFIG|-``).

    At most :data:`CONFIG_MAX` bytes.  A path must name a regular file,
    checked on the open fd (``O_NONBLOCK``: a FIFO must not hang us), so a
    device like ``/dev/zero`` is refused before a byte is read.  Errors in the
    content name the file first: ``app.json: container.path: required``.
    """
    import os
    import stat

    from ..errors import show, strerror

    name = "stdin" if path == "-" else show(path)
    fd = 0
    try:
        if path != "-":
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError(name, f"cannot open: {strerror(e.errno or 0)}") from None
    try:
        if path != "-" and not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(name, "not a regular file")
        chunks: list[bytes] = []
        got = 0
        while chunk := os.read(fd, CONFIG_MAX + 1 - got):
            chunks.append(chunk)
            got += len(chunk)
            if got > CONFIG_MAX:
                raise ConfigError(name, f"larger than {CONFIG_MAX} bytes")
    except OSError as e:
        raise ConfigError(name, f"cannot read: {strerror(e.errno or 0)}") from None
    finally:
        if fd != 0:
            os.close(fd)
    try:
        return loads(b"".join(chunks))
    except ConfigError as e:
        raise ConfigError(f"{name}: {e.where}", e.reason) from None


def dumps(config: Config, *, compact: bool = False) -> str:
    """The config as JSON text ending in a newline; :func:`loads` reads it back equal.

    Indented, or on one line with ``compact`` (hakurei's ``show --json --short``).
    """
    if compact:
        return json.dumps(config.to_json(), separators=(",", ":"), ensure_ascii=False) + "\n"
    return json.dumps(config.to_json(), indent=2, ensure_ascii=False) + "\n"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One value per key: with two, hakurei (Go) and Python would each pick a different one."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ConfigError("config", f"duplicate key {q(key)}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ConfigError("config", f"{name} is not JSON")


# -- the template ----------------------------------------------------------------------


def template() -> Config:
    """A complete valid example (``hakurei template``): an X11 terminal with D-Bus and sound."""
    return from_json(
        {
            "version": VERSION,
            "id": "org.example.XTerm",
            "identity": 9,
            "enablements": {"wayland": False, "x11": True, "dbus": True, "pulse": True},
            "session_bus": default_session_bus("org.example.XTerm").to_json(),
            "system_bus": None,
            "direct_wayland": False,
            "x11_cookie": "untrusted",
            "pulse_socket": "instance",
            "container": {
                "hostname": "localhost",
                "wait_delay": 2_000_000_000,
                "env": {"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"},
                "filesystem": [
                    {"type": "bind", "src": "/usr"},
                    {"type": "link", "dst": "/bin", "linkname": "usr/bin"},
                    {"type": "link", "dst": "/lib", "linkname": "usr/lib"},
                    {"type": "link", "dst": "/lib64", "linkname": "usr/lib64"},
                    {"type": "bind", "src": "/etc/", "special": True},
                    {"type": "bind", "src": "/var/cache/fontconfig", "optional": True},
                    {"type": "bind", "src": "/dev/dri", "dev": True, "optional": True},
                    {
                        "type": "bind",
                        "src": "/var/lib/hakurei/xterm",
                        "dst": "/home/app",
                        "write": True,
                        "ensure": True,
                    },
                    {"type": "ephemeral", "dst": "/var/tmp", "write": True, "perm": 0o1777},
                    {
                        "type": "overlay",
                        "dst": "/opt/tools",
                        "lower": ["/opt/tools-base", "/opt/tools-extra"],
                    },
                ],
                "username": "app",
                "shell": "/bin/sh",
                "home": "/home/app",
                "path": "/usr/bin/xterm",
                "args": ["xterm"],
                "devel": False,
                "userns": False,
                "host_net": False,
                "host_abstract": False,
                "tty": False,
                "multiarch": False,
                "device": False,
                "share_runtime": False,
                "share_tmpdir": False,
            },
        }
    )


#: The public names: this module is the app config's face; records and checks live beside it.
__all__ = [
    "BindFS",
    "BusConfig",
    "CONFIG_MAX",
    "Config",
    "ConfigError",
    "ContainerConfig",
    "Enablements",
    "EphemeralFS",
    "FilesystemEntry",
    "HOST_NAME_MAX",
    "IDENTITY_MAX",
    "INT64_MAX",
    "LOGIN_NAME_MAX",
    "LinkFS",
    "OverlayFS",
    "PATH_MAX",
    "PULSE_SOCKETS",
    "VERSION",
    "WAIT_DELAY_DEFAULT",
    "WAIT_DELAY_MAX",
    "X11_COOKIES",
    "_CONTAINER_FLAGS",
    "bus_name_problem",
    "default_session_bus",
    "dumps",
    "from_json",
    "load_file",
    "loads",
    "rule_problem",
    "template",
]
