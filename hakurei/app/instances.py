"""Live instances as ``ps``, ``show ID`` and ``kill`` see them: read, checked, printed.

The store hands over each live instance's entry as JSON it parsed
(``store.py``); the ``info`` in it is the monitor's::

    {"config": <Config.to_json()>, "argv": [...], "enablements": ["x11", ...],
     "notes": [...], "app": {"pid": P, "starttime": T},
     "launcher": {"pid": L, "starttime": T2}}

It sits in a directory the user owns, so every field is hostile input: each
is checked for type and range here, and what fails is kept as a *problem*
(one line) beside whatever did check, never a traceback.  ``ps`` then shows
the instance as malformed, ``show`` names the problem, and ``kill`` refuses
an instance whose app is not known exactly (pid *and* start time).

Output follows hakurei's ``ps``/``show`` (reference launcher.md §4.1), so
its users read ours at a glance: the table is Go's ``tabwriter`` layout
(padding 4, a leading empty column), ids are shortened to 8 hex digits,
uptime is Go's rounded duration (``1h2m3s``).  Every string from an entry
goes through :func:`hakurei.errors.show`, so no control byte reaches the
terminal.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import HakureiError, q, safe_line, show
from .check import from_json
from .records import Config, ConfigError

#: Long enough for any real command line, short enough that a hostile entry cannot flood.
LIST_MAX = 4096
#: Largest pid the kernel hands out (PID_MAX_LIMIT on 64-bit).
PID_MAX = 1 << 22
#: What ``ps`` prints for an instance whose config did not check.
NO_CONFIG = "(No configuration information)"
_HEX = re.compile(r"[0-9a-f]{1,32}")


class InstanceError(HakureiError):
    """No such live instance, or more than one: one line, exit 125."""


@dataclass(frozen=True, slots=True)
class Proc:
    """A process named so that a recycled pid cannot pass for it."""

    pid: int
    #: field 22 of /proc/PID/stat (clock ticks after boot)
    starttime: int


@dataclass(frozen=True, slots=True)
class Instance:
    """One live instance's entry, every field checked (None where it did not)."""

    id: str
    #: the monitor's pid (the store's own field)
    pid: int | None
    created_ns: int | None
    config: Config | None
    argv: tuple[str, ...]
    enablements: tuple[str, ...]
    notes: tuple[str, ...]
    app: Proc | None
    launcher: Proc | None
    #: one line per field that did not check
    problems: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.id[:8]

    def application(self) -> str:
        """hakurei's ``identity (id)`` column; the id is escaped."""
        if self.config is None:
            return NO_CONFIG
        app_id = show(self.config.id) if self.config.id else f"app.hakurei.{self.short}"
        identity = "-" if self.config.identity is None else str(self.config.identity)
        return f"{identity} ({app_id})"


def _int(value: object, low: int, high: int) -> int | None:
    # bool is an int to Python, never to us
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    return None


def _strings(value: object, what: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if (
        isinstance(value, list)
        and len(value) <= LIST_MAX
        and all(isinstance(v, str) for v in value)
    ):
        return tuple(value)
    problems.append(f"{what}: not a list of strings")
    return ()


def _proc(value: object, what: str, problems: list[str]) -> Proc | None:
    if value is None:
        problems.append(f"{what}: missing")
        return None
    if isinstance(value, dict):
        pid = _int(value.get("pid"), 2, PID_MAX)
        start = _int(value.get("starttime"), 0, 1 << 63)
        if pid is not None and start is not None:
            return Proc(pid, start)
    problems.append(f"{what}: want {{pid, starttime}} with pid 2..{PID_MAX}")
    return None


def parse(entry: dict[str, Any]) -> Instance:
    """An entry from ``Store.live()`` (its ``version`` and ``id`` already checked)."""
    problems: list[str] = []
    id = str(entry["id"])
    pid = _int(entry.get("pid"), 1, PID_MAX)
    if pid is None:
        problems.append("pid: not a pid")
    created = _int(entry.get("created_ns"), 0, 1 << 63)
    if created is None:
        problems.append("created_ns: not a time")
    info = entry.get("info")
    if not isinstance(info, dict):
        problems.append("info: not an object")
        info = {}
    config = None
    if "config" not in info:
        problems.append("config: missing")
    else:
        try:
            config = from_json(info["config"])
        except ConfigError as e:
            problems.append(f"config: {e}")
        except RecursionError:
            problems.append("config: nested too deeply")
    return Instance(
        id=id,
        pid=pid,
        created_ns=created,
        config=config,
        argv=_strings(info.get("argv"), "argv", problems),
        enablements=_strings(info.get("enablements"), "enablements", problems),
        notes=_strings(info.get("notes"), "notes", problems),
        app=_proc(info.get("app"), "app", problems),
        launcher=_proc(info.get("launcher"), "launcher", problems),
        problems=tuple(problems),
    )


def live() -> list[Instance]:
    """This user's live instances, oldest first (liveness is the lock: ``Store.live()``)."""
    from .store import Store, StoreError

    try:
        with Store() as store:
            entries = store.live()
    except StoreError as e:
        raise InstanceError(str(e)) from None
    return oldest_first([parse(entry) for entry in entries])


def looks_like_id(text: str) -> bool:
    """Whether ``show``/``kill`` should look ``text`` up in the store: 8 to 32 hex digits."""
    return len(text) >= 8 and _HEX.fullmatch(text) is not None


def find(instances: list[Instance], prefix: str) -> Instance:
    """The one live instance whose id starts with ``prefix``; ``InstanceError`` otherwise."""
    if not _HEX.fullmatch(prefix):
        raise InstanceError(f"{q(prefix)} is not an instance id (hex digits, as ps shows)")
    found = [i for i in instances if i.id.startswith(prefix)]
    if not found:
        raise InstanceError(f"no live instance {q(prefix)} (see hakurei ps)")
    if len(found) > 1:
        ids = ", ".join(i.short for i in found)
        raise InstanceError(f"instance id {q(prefix)} is ambiguous: {ids}")
    return found[0]


# -- text ------------------------------------------------------------------------------


def go_duration(ns: int) -> str:
    """A duration rounded to the second, as Go prints it (``0s``, ``45s``, ``1h2m3s``)."""
    seconds = max(0, (ns + 500_000_000) // 1_000_000_000)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def uptime(instance: Instance, now_ns: int) -> str:
    return "?" if instance.created_ns is None else go_duration(now_ns - instance.created_ns)


def tabulate(rows: list[list[str]], padding: int = 4) -> str:
    """Go's ``tabwriter.NewWriter(w, 0, 1, 4, ' ', 0)`` on tab-separated cells.

    Every cell but the last of a row is padded to its column's width plus
    ``padding``; hakurei's rows start with an empty cell, hence the indent.
    """
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell))
    out = []
    for row in rows:
        cells = [cell.ljust(widths[i] + padding) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1] if row else "")
    return "".join(line + "\n" for line in out)


def ps_text(instances: list[Instance], now_ns: int) -> str:
    """``hakurei ps``: ``Instance PID Application Uptime``, oldest first."""
    rows = [["", "Instance", "PID", "Application", "Uptime"]]
    for i in instances:
        app = i.application()
        if i.problems:
            app = f"(malformed entry: {safe_line(i.problems[0])})"
        pid = "?" if i.pid is None else str(i.pid)
        rows.append(["", i.short, pid, app, uptime(i, now_ns)])
    return tabulate(rows)


def oldest_first(instances: list[Instance]) -> list[Instance]:
    return sorted(instances, key=lambda i: (i.created_ns or 0, i.id))


def state_json(instance: Instance) -> dict[str, Any]:
    """hakurei's ``hst.State`` as JSON: ids, pids, the config flattened in, the start time.

    ``shim_pid`` is the app's (the container's) pid, as hakurei's shim was the
    process that held the app; ``error`` lists what did not check.
    """
    out: dict[str, Any] = {"instance": instance.id, "pid": instance.pid}
    out["shim_pid"] = instance.app.pid if instance.app else None
    if instance.config is not None:
        out.update(instance.config.to_json())
    if instance.created_ns is not None:
        dt = datetime.fromtimestamp(instance.created_ns / 1e9, tz=UTC)
        out["time"] = dt.isoformat().replace("+00:00", "Z")
    out["argv"] = list(instance.argv)
    out["notes"] = list(instance.notes)
    if instance.problems:
        out["error"] = list(instance.problems)
    return out


def dump(value: Any, compact: bool) -> str:
    """JSON as hakurei prints it: indented, or one line with ``--short``."""
    if compact:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True) + "\n"
    return json.dumps(value, indent=2, ensure_ascii=True) + "\n"


def state_text(instance: Instance, now_ns: int | None = None) -> str:
    """``show ID``'s ``State`` section (hakurei: ``Instance: id (monitor -> shim)``, ``Uptime``)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    monitor = "?" if instance.pid is None else str(instance.pid)
    app = "?" if instance.app is None else str(instance.app.pid)
    rows = [
        ("Instance", f"{instance.id} ({monitor} -> {app})"),
        ("Uptime", uptime(instance, now_ns)),
    ]
    if instance.argv:
        rows.append(("Command", " ".join(show(a) if a else '""' for a in instance.argv)))
    if instance.enablements:
        rows.append(("Granted", ", ".join(show(e) for e in instance.enablements)))
    width = max(len(key) for key, _ in rows) + 2
    out = ["State", *(f" {key + ':':<{width}}{value}" for key, value in rows)]
    out += [f" {show(note)}" for note in instance.notes]
    out += [f" Error: {safe_line(p)}" for p in instance.problems]
    return "\n".join(out) + "\n"
