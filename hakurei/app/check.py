"""Checking an app config's JSON value, field by field, into records.

Everything is checked before anything touches the host (reference
launcher.md §7): types, unknown keys (named by their path), absolute paths,
D-Bus names and rules as xdg-dbus-proxy reads them, env entries, ids.  Each
problem is one ``ConfigError`` naming where it is.
"""

from __future__ import annotations

import re

from ..errors import q
from .records import (
    HOST_NAME_MAX,
    IDENTITY_MAX,
    INT64_MAX,
    LOGIN_NAME_MAX,
    PATH_MAX,
    PULSE_SOCKETS,
    VERSION,
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
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_USERNAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]*\$?")
#: One element of a well-known bus name (GLib's g_dbus_is_name, which xdg-dbus-proxy uses).
_BUS_ELEMENT = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*")
#: One element of an interface name, or a member name.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_ELEMENT = re.compile(r"[A-Za-z0-9_]+")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    wayland_allow = _wayland(top.get("wayland"))
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
        wayland_allow=wayland_allow,
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


#: A Wayland interface name, as the protocol XML files write them.
_INTERFACE = re.compile(r"[a-z][a-z0-9_]{0,63}")
WAYLAND_ALLOW_MAX = 64


def _wayland(value: object) -> tuple[str, ...]:
    """``wayland``: ``{"allow": [INTERFACE, ...]}``, globals the filtering proxy also shows."""
    if value is None:
        return ()
    obj = _Object(value, "wayland")
    names = _list(obj.get("allow"), obj.at("allow"))
    if len(names) > WAYLAND_ALLOW_MAX:
        raise ConfigError(obj.at("allow"), f"more than {WAYLAND_ALLOW_MAX} names")
    out: list[str] = []
    for i, name in enumerate(names):
        where = f"{obj.at('allow')}[{i}]"
        if not isinstance(name, str) or not _INTERFACE.fullmatch(name):
            raise ConfigError(where, f"{q(str(name))} is not a Wayland interface name")
        out.append(name)
    obj.done()
    return tuple(dict.fromkeys(out))


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
