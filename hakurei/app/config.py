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
import re
from dataclasses import dataclass, field

from ..errors import HakureiError, q

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The on-disk config format this module reads and writes (frozen; see the docstring).
VERSION = 1

#: Largest config file read (1 MiB: a config is a few KiB).
CONFIG_MAX = 1 << 20

#: hakurei's identity range (it used to select a uid; here only a store key).
IDENTITY_MAX = 9999

#: Kernel and libc limits a value must fit.
PATH_MAX = 4096
HOST_NAME_MAX = 64
LOGIN_NAME_MAX = 256
INT64_MAX = (1 << 63) - 1

#: ``wait_delay`` semantics (nanoseconds): 0 → the default, above the cap → the cap.
WAIT_DELAY_DEFAULT = 5_000_000_000
WAIT_DELAY_MAX = 30_000_000_000

X11_COOKIES = ("untrusted", "trusted")
PULSE_SOCKETS = ("instance", "shared")

_USERNAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]*\$?")
#: One element of a well-known bus name (GLib's g_dbus_is_name, which xdg-dbus-proxy uses).
_BUS_ELEMENT = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*")
#: One element of an interface name, or a member name.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_ELEMENT = re.compile(r"[A-Za-z0-9_]+")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConfigError(HakureiError):
    """A config that cannot be used: ``WHERE: REASON`` on one line.

    ``where`` is the key path (``container.filesystem[2].dst``), ``config``
    for the whole document, or ``line L column C`` for a JSON syntax error.
    """

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


# -- the records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enablements:
    """Which host services the app gets (hakurei's bitmask: wayland 1, x11 2, dbus 4, pulse 8)."""

    wayland: bool = False
    x11: bool = False
    dbus: bool = False
    pulse: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"wayland": self.wayland, "x11": self.x11, "dbus": self.dbus, "pulse": self.pulse}


@dataclass(frozen=True, slots=True)
class BusConfig:
    """xdg-dbus-proxy rules for one bus; every name already checked as the proxy would."""

    see: tuple[str, ...] = ()
    talk: tuple[str, ...] = ()
    own: tuple[str, ...] = ()
    #: name → ``[METHOD][@PATH]`` rule
    call: dict[str, str] = field(default_factory=dict)
    broadcast: dict[str, str] = field(default_factory=dict)
    log: bool = False
    filter: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "see": list(self.see),
            "talk": list(self.talk),
            "own": list(self.own),
            "call": dict(self.call),
            "broadcast": dict(self.broadcast),
            "log": self.log,
            "filter": self.filter,
        }


@dataclass(frozen=True, slots=True)
class BindFS:
    """``{"type": "bind"}``: ``src`` at ``dst`` (default: ``src``), read-only unless ``write``.

    ``special`` with ``dst`` ``/`` is hakurei's autoroot, with ``/etc`` its
    autoetc (a trailing slash is allowed, not required).
    """

    src: str
    dst: str | None = None
    write: bool = False
    dev: bool = False
    ensure: bool = False
    optional: bool = False
    special: bool = False

    @property
    def target(self) -> str:
        """Where it is mounted: ``dst``, or ``src`` when ``dst`` is omitted."""
        return self.dst if self.dst is not None else self.src

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "bind", "src": self.src}
        if self.dst is not None:
            out["dst"] = self.dst
        for key in ("write", "dev", "ensure", "optional", "special"):
            if getattr(self, key):
                out[key] = True
        return out


@dataclass(frozen=True, slots=True)
class EphemeralFS:
    """``{"type": "ephemeral"}``: a tmpfs, writable (``size`` bytes, mode ``perm``) or empty."""

    dst: str
    write: bool = False
    #: bytes; 0 = the kernel's default
    size: int = 0
    #: mode bits; 0 = 0o755
    perm: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "ephemeral",
            "dst": self.dst,
            "write": self.write,
            "size": self.size,
            "perm": self.perm,
        }


@dataclass(frozen=True, slots=True)
class LinkFS:
    """``{"type": "link"}``: a symlink at ``dst`` to ``linkname`` (resolved on the host first
    with ``dereference``, which needs an absolute ``linkname``)."""

    dst: str
    linkname: str
    dereference: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "link", "dst": self.dst, "linkname": self.linkname}
        if self.dereference:
            out["dereference"] = True
        return out


@dataclass(frozen=True, slots=True)
class OverlayFS:
    """``{"type": "overlay"}``: writable with ``upper`` and ``work``, else read-only."""

    dst: str
    lower: tuple[str, ...]
    upper: str | None = None
    work: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "overlay", "dst": self.dst, "lower": list(self.lower)}
        if self.upper is not None:
            out["upper"] = self.upper
            out["work"] = self.work
        return out


FilesystemEntry = BindFS | EphemeralFS | LinkFS | OverlayFS


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """``container``: how the app's container is built (reference launcher.md §1.3)."""

    shell: str
    home: str
    path: str
    hostname: str = ""
    #: nanoseconds, as written (see :attr:`grace_ns` for what it means)
    wait_delay: int = 0
    env: dict[str, str] = field(default_factory=dict)
    filesystem: tuple[FilesystemEntry, ...] = ()
    username: str = "chronos"
    args: tuple[str, ...] = ()
    devel: bool = False
    userns: bool = False
    host_net: bool = False
    host_abstract: bool = False
    tty: bool = False
    multiarch: bool = False
    device: bool = False
    share_runtime: bool = False
    share_tmpdir: bool = False

    @property
    def argv(self) -> tuple[str, ...]:
        """The app's argv: ``args``, or ``[path]`` when it is empty (hakurei's rule)."""
        return self.args or (self.path,)

    @property
    def grace_ns(self) -> int:
        """hakurei's ``wait_delay`` rule: negative → 0, 0 → 5 s, capped at 30 s."""
        if self.wait_delay < 0:
            return 0
        if self.wait_delay == 0:
            return WAIT_DELAY_DEFAULT
        return min(self.wait_delay, WAIT_DELAY_MAX)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hostname": self.hostname,
            "wait_delay": self.wait_delay,
            "env": dict(self.env),
            "filesystem": [entry.to_json() for entry in self.filesystem],
            "username": self.username,
            "shell": self.shell,
            "home": self.home,
            "path": self.path,
            "args": list(self.args),
        }
        for key in _CONTAINER_FLAGS:
            out[key] = getattr(self, key)
        return out


_CONTAINER_FLAGS = (
    "devel",
    "userns",
    "host_net",
    "host_abstract",
    "tty",
    "multiarch",
    "device",
    "share_runtime",
    "share_tmpdir",
)


@dataclass(frozen=True, slots=True)
class Config:
    """One app: what runs, where, and which host services it gets."""

    container: ContainerConfig
    id: str = ""
    enablements: Enablements = Enablements()
    #: None = the default session rules (:func:`default_session_bus`)
    session_bus: BusConfig | None = None
    #: None = no system bus at all
    system_bus: BusConfig | None = None
    direct_wayland: bool = False
    x11_cookie: str = "untrusted"
    pulse_socket: str = "instance"
    #: the state-store key; None = derived from ``id`` by the store
    identity: int | None = None
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        """The config as JSON values, every field explicit (the frozen format, version 1)."""
        out: dict[str, Any] = {"version": self.version, "id": self.id}
        if self.identity is not None:
            out["identity"] = self.identity
        out["enablements"] = self.enablements.to_json()
        out["session_bus"] = None if self.session_bus is None else self.session_bus.to_json()
        out["system_bus"] = None if self.system_bus is None else self.system_bus.to_json()
        out["direct_wayland"] = self.direct_wayland
        out["x11_cookie"] = self.x11_cookie
        out["pulse_socket"] = self.pulse_socket
        out["container"] = self.container.to_json()
        return out


def default_session_bus(app_id: str) -> BusConfig:
    """hakurei's session rules when ``session_bus`` is null (reference launcher.md §2.4)."""
    own = (f"{app_id}.*", f"org.mpris.MediaPlayer2.{app_id}.*") if app_id else ()
    return BusConfig(
        talk=("org.freedesktop.DBus", "org.freedesktop.Notifications"),
        own=own,
        call={"org.freedesktop.portal.*": "*"},
        broadcast={"org.freedesktop.portal.*": "@/org/freedesktop/portal/*"},
        filter=True,
    )


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


# -- validation ------------------------------------------------------------------------


def _join(where: str, key: str) -> str:
    """``where.key``, or ``where["odd key"]`` when the key is not a plain name."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{where}.{key}" if where else key
    return f"{where or 'config'}[{q(key)}]"


def _entry_at(where: str, key: str) -> str:
    """``where["key"]``: an entry of a map whose keys are data (env names, bus names)."""
    return f"{where}[{q(key)}]"


def _kind(value: object) -> str:
    """A JSON value's type name, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _text(value: object, where: str, what: str = "a string") -> str:
    """A string that can reach the kernel: valid UTF-8 (no lone surrogate) and no NUL."""
    if not isinstance(value, str):
        raise ConfigError(where, f"want {what}, not {_kind(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(where, f"{q(value)} is not valid Unicode text") from None
    if "\0" in value:
        raise ConfigError(where, f"{q(value)} contains a NUL byte")
    return value


def _abs(value: object, where: str) -> str:
    path = _text(value, where, "an absolute path")
    if not path.startswith("/"):
        raise ConfigError(where, f"{q(path)} is not an absolute path")
    if len(path.encode()) >= PATH_MAX:
        raise ConfigError(where, f"longer than {PATH_MAX - 1} bytes")
    return path


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(where, f"want true or false, not {_kind(value)}")
    return value


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, f"want an integer, not {_kind(value)}")
    if not low <= value <= high:
        raise ConfigError(where, f"{value} is out of range ({low}..{high})")
    return value


class _Object:
    """A JSON object being read: each key is taken once, and any key left over is an error."""

    def __init__(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(where or "config", f"want an object, not {_kind(value)}")
        self.value: dict[str, Any] = value
        self.where = where
        self.taken: set[str] = set()

    def at(self, key: str) -> str:
        return _join(self.where, key)

    def get(self, key: str) -> Any:
        """The value at ``key``, or None when it is absent (JSON null reads the same)."""
        self.taken.add(key)
        return self.value.get(key)

    def has(self, key: str) -> bool:
        return self.value.get(key) is not None

    def required(self, key: str) -> Any:
        self.taken.add(key)
        if self.value.get(key) is None:
            raise ConfigError(self.at(key), "required")
        return self.value[key]

    def flag(self, key: str) -> bool:
        value = self.get(key)
        return False if value is None else _bool(value, self.at(key))

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.get(key)
        return 0 if value is None else _int(value, self.at(key), low, high)

    def text(self, key: str, default: str = "") -> str:
        value = self.get(key)
        return default if value is None else _text(value, self.at(key))

    def abs(self, key: str) -> str:
        return _abs(self.required(key), self.at(key))

    def abs_or_none(self, key: str) -> str | None:
        value = self.get(key)
        return None if value is None else _abs(value, self.at(key))

    def done(self) -> None:
        """Refuse the first key no reader took: a typo must not be ignored silently."""
        for key in self.value:
            if key not in self.taken:
                raise ConfigError(self.at(key), "unknown key")


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(where, f"want a list, not {_kind(value)}")
    return value


def from_json(value: object) -> Config:
    """A :class:`Config` from decoded JSON, every value checked (see the module docstring)."""
    top = _Object(value, "")
    version = top.get("version")
    if version is not None:
        _int(version, "version", 0, INT64_MAX)
        if version != VERSION:
            raise ConfigError(
                "version", f"{version} is not supported (this hakurei reads {VERSION})"
            )
    _refuse_setuid_features(top)
    app_id = top.text("id")
    if app_id:
        # It names the app's own bus names (ID.* and org.mpris.MediaPlayer2.ID.*), so both
        # must be names the proxy takes; it is also a file name in the state store.
        problem = bus_name_problem(app_id) or bus_name_problem(f"org.mpris.MediaPlayer2.{app_id}")
        if problem is not None or app_id.endswith(".*"):
            raise ConfigError(
                "id", f"{q(app_id)} is not a reverse-DNS app id (like org.example.App)"
            )
    identity = top.get("identity")
    if identity is not None:
        identity = _int(identity, "identity", 0, IDENTITY_MAX)
    enablements = _enablements(top.get("enablements"))
    session_bus = _bus(top.get("session_bus"), "session_bus")
    system_bus = _bus(top.get("system_bus"), "system_bus")
    direct_wayland = top.flag("direct_wayland")
    x11_cookie = _choice(top, "x11_cookie", X11_COOKIES)
    pulse_socket = _choice(top, "pulse_socket", PULSE_SOCKETS)
    container = _container(top.required("container"))
    top.done()
    if enablements.x11 and container.host_net and not container.host_abstract:
        raise ConfigError(
            "enablements.x11",
            "needs container.host_abstract when container.host_net is true (Landlock makes "
            "libxcb's abstract X socket fail with EPERM and libxcb 1.15 does not fall back to "
            "the path; host_abstract exposes every abstract socket of the host network)",
        )
    return Config(
        container=container,
        id=app_id,
        enablements=enablements,
        session_bus=session_bus,
        system_bus=system_bus,
        direct_wayland=direct_wayland,
        x11_cookie=x11_cookie,
        pulse_socket=pulse_socket,
        identity=identity,
    )


def _refuse_setuid_features(top: _Object) -> None:
    """hakurei's features that need its setuid helper (another uid) or root: one reason each.

    Their empty or harmless values are accepted, so hakurei's own configs
    (which always carry ``groups`` and ``map_real_uid``) load when they ask
    for nothing these can't give.
    """
    groups = top.get("groups")
    if _list(groups, "groups"):
        raise ConfigError(
            "groups",
            "supplementary groups need a setuid helper; the app keeps your own groups (use [])",
        )
    if _list(top.get("extra_perms"), "extra_perms"):
        raise ConfigError(
            "extra_perms",
            "ACL grants are for another uid; the app runs as your own uid and needs none (use [])",
        )
    container = top.value.get("container")
    if isinstance(container, dict):
        where = "container.map_real_uid"
        real = container.get("map_real_uid")
        if real is not None and not _bool(real, where):
            raise ConfigError(
                where,
                "false would switch the app's uid; it runs as your own uid (D-Bus clients refuse "
                "any other), so only true is accepted",
            )
        compat = container.get("seccomp_compat")
        if compat is not None and _bool(compat, "container.seccomp_compat"):
            raise ConfigError(
                "container.seccomp_compat",
                "the Flatpak-identical filter is not offered; the everyday default and the "
                "devel, userns, tty and multiarch flags choose the filter",
            )


def _choice(obj: _Object, key: str, choices: tuple[str, ...]) -> str:
    value = obj.text(key, choices[0])
    if value not in choices:
        want = " or ".join(q(c) for c in choices)
        raise ConfigError(obj.at(key), f"{q(value)} is not {want}")
    return value


def _enablements(value: object) -> Enablements:
    if value is None:
        return Enablements()
    obj = _Object(value, "enablements")
    out = Enablements(
        wayland=obj.flag("wayland"),
        x11=obj.flag("x11"),
        dbus=obj.flag("dbus"),
        pulse=obj.flag("pulse"),
    )
    obj.done()
    return out


def _bus(value: object, where: str) -> BusConfig | None:
    if value is None:
        return None
    obj = _Object(value, where)
    names: dict[str, tuple[str, ...]] = {}
    for key in ("see", "talk", "own"):
        at = obj.at(key)
        items = []
        for i, item in enumerate(_list(obj.get(key), at)):
            name = _text(item, f"{at}[{i}]")
            _check_bus_name(name, f"{at}[{i}]")
            items.append(name)
        names[key] = tuple(items)
    rules: dict[str, dict[str, str]] = {}
    for key in ("call", "broadcast"):
        raw = obj.get(key)
        at = obj.at(key)
        if raw is None:
            rules[key] = {}
            continue
        if not isinstance(raw, dict):
            raise ConfigError(at, f"want an object, not {_kind(raw)}")
        checked: dict[str, str] = {}
        for name, rule in raw.items():
            here = _entry_at(at, name)
            _check_bus_name(_text(name, here), here)
            problem = rule_problem(_text(rule, here))
            if problem is not None:
                raise ConfigError(here, f"rule {q(rule)} {problem}")
            checked[name] = rule
        rules[key] = checked
    out = BusConfig(
        see=names["see"],
        talk=names["talk"],
        own=names["own"],
        call=rules["call"],
        broadcast=rules["broadcast"],
        log=obj.flag("log"),
        filter=obj.flag("filter"),
    )
    obj.done()
    return out


def _check_bus_name(name: str, where: str) -> None:
    problem = bus_name_problem(name)
    if problem is not None:
        raise ConfigError(where, f"{q(name)} {problem}")


def bus_name_problem(name: str) -> str | None:
    """Why xdg-dbus-proxy would refuse ``name`` (``--see``/``--talk``/``--own``), or None.

    The proxy strips one trailing ``.*`` (a subtree), refuses unique names
    (``:1.42``), and checks the rest with GLib's ``g_dbus_is_name``: at most
    255 characters, at least two dot-separated elements, each of ASCII
    letters, digits, ``_`` and ``-``, not starting with a digit.  A dotless
    name makes the proxy exit 1 at start (hakurei's lesson: check first).
    """
    base = name[:-2] if name.endswith(".*") else name
    if not base:
        return "is not a bus name (it is empty)"
    if base.startswith(":"):
        return "is a unique connection name; rules take well-known names"
    if len(base) > 255:
        return "is longer than 255 characters"
    parts = base.split(".")
    if len(parts) < 2:
        return "has no dot: xdg-dbus-proxy refuses dotless bus names"
    if not all(_BUS_ELEMENT.fullmatch(part) for part in parts):
        return (
            "is not a well-formed bus name (dot-separated elements of letters, digits, "
            "_ and -, none empty or starting with a digit)"
        )
    return None


def rule_problem(rule: str) -> str | None:
    """Why a ``--call``/``--broadcast`` rule ``[METHOD][@PATH]`` is malformed, or None.

    METHOD is ``*``, ``INTERFACE.*`` or ``INTERFACE.MEMBER``; PATH an object
    path, optionally ending in ``/*`` (the subtree).  The proxy does not check
    these itself: a typo there would silently allow nothing.
    """
    if not rule:
        return 'is empty (use "*" for every method)'
    method, at, path = rule.partition("@")
    if at:
        base = (path[:-2] or "/") if path.endswith("/*") else path
        if not _is_object_path(base):
            return "has a malformed object path after @"
    if method and method != "*":
        interface, dot, member = method.rpartition(".")
        if not dot or not _is_interface(interface):
            return "does not start with *, INTERFACE.* or INTERFACE.METHOD"
        if member != "*" and not (_IDENT.fullmatch(member) and len(member) <= 255):
            return "has a malformed method name"
    return None


def _is_interface(name: str) -> bool:
    parts = name.split(".")
    return len(name) <= 255 and len(parts) >= 2 and all(_IDENT.fullmatch(p) for p in parts)


def _is_object_path(path: str) -> bool:
    if path == "/":
        return True
    parts = path.split("/")
    return len(parts) > 1 and parts[0] == "" and all(_PATH_ELEMENT.fullmatch(p) for p in parts[1:])


def _container(value: object) -> ContainerConfig:
    obj = _Object(value, "container")
    obj.get("map_real_uid")  # checked by _refuse_setuid_features: only true reaches here
    obj.get("seccomp_compat")  # likewise: only false
    hostname = obj.text("hostname")
    if len(hostname.encode()) > HOST_NAME_MAX:
        raise ConfigError(obj.at("hostname"), f"longer than {HOST_NAME_MAX} bytes")
    if not hostname.isprintable() or " " in hostname:
        raise ConfigError(obj.at("hostname"), f"{q(hostname)} has spaces or control characters")
    wait_delay = obj.integer("wait_delay", -INT64_MAX - 1, INT64_MAX)
    username = obj.text("username", "chronos")
    if not _USERNAME.fullmatch(username) or len(username) >= LOGIN_NAME_MAX:
        raise ConfigError(
            obj.at("username"),
            f"{q(username)} is not a user name (a letter, then letters, digits, _ or -)",
        )
    out = ContainerConfig(
        shell=obj.abs("shell"),
        home=obj.abs("home"),
        path=obj.abs("path"),
        hostname=hostname,
        wait_delay=wait_delay,
        env=_env(obj.get("env"), obj.at("env")),
        filesystem=tuple(
            _entry(entry, f"container.filesystem[{i}]")
            for i, entry in enumerate(_list(obj.get("filesystem"), obj.at("filesystem")))
        ),
        username=username,
        args=tuple(
            _text(arg, f"container.args[{i}]")
            for i, arg in enumerate(_list(obj.get("args"), obj.at("args")))
        ),
        devel=obj.flag("devel"),
        userns=obj.flag("userns"),
        host_net=obj.flag("host_net"),
        host_abstract=obj.flag("host_abstract"),
        tty=obj.flag("tty"),
        multiarch=obj.flag("multiarch"),
        device=obj.flag("device"),
        share_runtime=obj.flag("share_runtime"),
        share_tmpdir=obj.flag("share_tmpdir"),
    )
    obj.done()
    return out


def _env(value: object, where: str) -> dict[str, str]:
    """Environment variables: names non-empty without ``=`` or NUL, values without NUL."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(where, f"want an object, not {_kind(value)}")
    out: dict[str, str] = {}
    for name, val in value.items():
        here = _entry_at(where, name)
        _text(name, here, "a name")
        if not name or "=" in name:
            raise ConfigError(here, f"{q(name)} is not a variable name (empty, or holds '=')")
        out[name] = _text(val, here)
    return out


def _entry(value: object, where: str) -> FilesystemEntry:
    obj = _Object(value, where)
    kind = obj.required("type")
    entry: FilesystemEntry
    if kind == "bind":
        entry = _bind(obj)
    elif kind == "ephemeral":
        entry = EphemeralFS(
            dst=obj.abs("dst"),
            write=obj.flag("write"),
            size=obj.integer("size", 0, INT64_MAX),
            perm=obj.integer("perm", 0, 0o7777),
        )
    elif kind == "link":
        linkname = _text(obj.required("linkname"), obj.at("linkname"))
        dereference = obj.flag("dereference")
        if dereference and not linkname.startswith("/"):
            raise ConfigError(obj.at("linkname"), "must be absolute with dereference")
        entry = LinkFS(dst=obj.abs("dst"), linkname=linkname, dereference=dereference)
    elif kind == "overlay":
        entry = _overlay(obj)
    else:
        types = "bind, ephemeral, link or overlay"
        shown = q(kind) if isinstance(kind, str) else _kind(kind)
        raise ConfigError(obj.at("type"), f"{shown} is not {types}")
    obj.done()
    return entry


def _bind(obj: _Object) -> BindFS:
    entry = BindFS(
        src=obj.abs("src"),
        dst=obj.abs_or_none("dst"),
        write=obj.flag("write"),
        dev=obj.flag("dev"),
        ensure=obj.flag("ensure"),
        optional=obj.flag("optional"),
        special=obj.flag("special"),
    )
    if entry.ensure and entry.optional:
        raise ConfigError(obj.at("optional"), "cannot go with ensure (create it, or skip it?)")
    if entry.special and entry.target.rstrip("/") not in ("", "/etc"):
        where = obj.at("dst" if entry.dst is not None else "src")
        raise ConfigError(where, "special binds go at / (autoroot) or /etc (autoetc) only")
    return entry


def _overlay(obj: _Object) -> OverlayFS:
    dst = obj.abs("dst")
    at = obj.at("lower")
    lower = tuple(_abs(p, f"{at}[{i}]") for i, p in enumerate(_list(obj.get("lower"), at)))
    upper = obj.abs_or_none("upper")
    work = obj.abs_or_none("work")
    if (upper is None) != (work is None):
        raise ConfigError(obj.at("upper" if upper is None else "work"), "required with the other")
    need = 1 if upper is not None else 2
    if len(lower) < need:
        what = "a writable overlay needs 1" if need == 1 else "a read-only overlay needs 2"
        raise ConfigError(at, f"{what} or more lower directories")
    return OverlayFS(dst=dst, lower=lower, upper=upper, work=work)


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
