"""``hakurei show``'s text form of a config, in hakurei's sections and notation.

Sections ``App``, ``Filesystem`` (left out by ``--short``), ``Session bus``
and ``System bus`` (when D-Bus is enabled), as hakurei's ``show`` prints
them (reference launcher.md §1.4 and §4.1), so its users read ours at a
glance.  Every name or path a config supplies goes through
:func:`hakurei.errors.show`: a control byte in a config cannot reach the
terminal raw.
"""

from __future__ import annotations

from ..errors import show
from .config import (
    BindFS,
    BusConfig,
    Config,
    EphemeralFS,
    FilesystemEntry,
    LinkFS,
    default_session_bus,
)

#: ``Flags:`` names, as hakurei's ``show`` spells them.
FLAG_NAMES = (
    ("multiarch", "multiarch"),
    ("devel", "devel"),
    ("userns", "userns"),
    ("host_net", "net"),
    ("host_abstract", "abstract"),
    ("tty", "tty"),
    ("device", "device"),
    ("share_runtime", "runtime"),
    ("share_tmpdir", "tmpdir"),
)


def render(config: Config, *, short: bool = False) -> str:
    """The whole text, ending in a newline."""
    c = config.container
    on = config.enablements
    enabled = [name for name in ("wayland", "x11", "dbus", "pulse") if getattr(on, name)]
    if on.wayland and config.direct_wayland:
        enabled[enabled.index("wayland")] = "wayland (direct)"
    if on.x11:
        enabled[enabled.index("x11")] = f"x11 ({config.x11_cookie} cookie)"
    if on.pulse:
        enabled[enabled.index("pulse")] = f"pulse ({config.pulse_socket} socket)"
    flags = [shown for key, shown in FLAG_NAMES if getattr(c, key)]
    identity = "-" if config.identity is None else str(config.identity)
    app_id = show(config.id) if config.id else "(none)"
    rows = [
        ("Identity", f"{identity} ({app_id})"),
        ("Enablements", ", ".join(enabled) or "none"),
        ("Flags", ", ".join(flags) or "none"),
        ("Home", show(c.home)),
        ("Hostname", show(c.hostname) if c.hostname else "(unchanged)"),
        ("Path", show(c.path)),
        ("Arguments", " ".join(show(arg) if arg else '""' for arg in c.argv)),
    ]
    out = ["App", *_table(rows)]
    if not short:
        out += ["", "Filesystem"]
        out += [" " + entry_text(e) for e in c.filesystem] or [" (none)"]
    if on.dbus:
        session = config.session_bus or default_session_bus(config.id)
        out += ["", "Session bus", *_table(_bus_rows(session))]
        out += ["", "System bus"]
        if config.system_bus is None:
            out.append(" (none)")
        else:
            out += _table(_bus_rows(config.system_bus))
    return "\n".join(out) + "\n"


def _table(rows: list[tuple[str, str]]) -> list[str]:
    width = max(len(key) for key, _ in rows) + 2
    return [f" {key + ':':<{width}}{value}" for key, value in rows]


def _bus_rows(bus: BusConfig) -> list[tuple[str, str]]:
    rows = [("Filter", "true" if bus.filter else "false")]
    for key in ("see", "talk", "own"):
        names: tuple[str, ...] = getattr(bus, key)
        if names:
            rows.append((key.capitalize(), " ".join(show(n) for n in names)))
    for key in ("call", "broadcast"):
        rules: dict[str, str] = getattr(bus, key)
        if rules:
            text = " ".join(f"{show(n)}={show(r)}" for n, r in rules.items())
            rows.append((key.capitalize(), text))
    if bus.log:
        rows.append(("Log", "true"))
    return rows


def entry_text(entry: FilesystemEntry) -> str:
    """One filesystem entry in hakurei's ``show`` notation (reference launcher.md §1.4).

    A bind is a flag letter (``d`` dev, ``w`` write), then ``-`` (ensure),
    ``+`` (optional) or ``*``, then ``src[:dst]``; special binds read
    ``autoroot[:w]:src`` and ``autoetc:src``.
    """
    if isinstance(entry, BindFS):
        if entry.special:
            if entry.target.rstrip("/") == "":
                return f"autoroot{':w' if entry.write else ''}:{show(entry.src)}"
            return f"autoetc:{show(entry.src)}"
        letter = "d" if entry.dev else "w" if entry.write else ""
        mark = "-" if entry.ensure else "+" if entry.optional else "*"
        dst = "" if entry.dst is None or entry.dst == entry.src else f":{show(entry.dst)}"
        return f"{letter}{mark}{show(entry.src)}{dst}"
    if isinstance(entry, EphemeralFS):
        text = f"ephemeral{':w' if entry.write else ''}:{show(entry.dst)}"
        if entry.write:
            text += f" mode={entry.perm or 0o755:04o}"
            if entry.size:
                text += f" size={entry.size}"
        return text
    if isinstance(entry, LinkFS):
        deref = "*" if entry.dereference else ""
        return f"link{deref}:{show(entry.dst)} -> {show(entry.linkname)}"
    lower = ":".join(show(p) for p in entry.lower)
    text = f"overlay:{show(entry.dst)} lower={lower}"
    if entry.upper is not None and entry.work is not None:
        text += f" upper={show(entry.upper)} work={show(entry.work)}"
    return text
