"""The app config's records: what a checked config is, and how it is written back.

Frozen dataclasses with ``to_json`` (the on-disk form, see ``config.VERSION``),
the limits a value must fit, and ``ConfigError``.  Reading and checking JSON
is ``check.py``; the public face (``loads``, ``load_file``, ``dumps``,
``template``) is ``config.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import HakureiError

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
    #: Wayland interfaces the filtering proxy shows besides its default allowlist
    wayland_allow: tuple[str, ...] = ()
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
        if self.wayland_allow:
            out["wayland"] = {"allow": list(self.wayland_allow)}
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
