"""The D-Bus enablement: the app talks to the user's buses only through ``xdg-dbus-proxy``.

Host half.  ``check`` finds the upstream buses (the session bus from
``DBUS_SESSION_BUS_ADDRESS``, else ``$XDG_RUNTIME_DIR/bus``; the system bus,
only when the config has ``system_bus``, from ``DBUS_SYSTEM_BUS_ADDRESS``, else
``/run/dbus/system_bus_socket``), the proxy binary, and re-checks every rule
as the proxy would: a refused config starts nothing.  ``prepare`` starts the
proxy in a small container of ours (``/usr`` read-only, the upstream sockets,
and one writable directory where it makes its sockets; no network unless the
bus is an abstract socket, which lives in the host's network namespace), in
``session.nursery``: it lives as long as the app, and, as every container of
ours, dies with the process that started it.

The proxy reads its arguments NUL-separated from a pipe (``--args=4``), so
no rule is ever parsed by a shell or shown in ``ps``, and writes one byte on
``--fd=3`` once its sockets listen; we wait for that byte (with a deadline)
before the app's container binds them, the race bubblejail #13 had.  The
proxy also exits by itself when that pipe's other end closes, i.e. when the
launcher is gone.

Undo: ``remove dbus`` (the socket directory) is journalled before it is made,
``remove dbus/<socket>`` before the proxy can create it, and ``kill`` for
the proxy's container while its init is still blocked on its setup pipe:
replayed last-first, the proxy dies before its sockets and their directory
go.  Nothing else on the host changes.

Container half.  The proxy's session socket is bound at ``<runtime>/bus``
with ``DBUS_SESSION_BUS_ADDRESS=unix:path=<runtime>/bus``, the system one at
``/run/dbus/system_bus_socket``; the real buses are never bound.  The app's
uid inside is the caller's: libdbus clients send their uid in ``AUTH
EXTERNAL`` and are refused when it is not the one the bus sees.
"""

from __future__ import annotations

import collections
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from ..container import Container, _unwrapped
from ..errors import HakureiError, StartError, q, safe_line
from ..std import BIND_WRITABLE, EVERYDAY, MS_RDONLY
from . import journal
from .check import bus_name_problem, rule_problem
from .enable import EnableError, Grant, Session
from .records import BusConfig, default_session_bus

if TYPE_CHECKING:
    from ..ops import Ops

PROXY = "xdg-dbus-proxy"
#: Where the proxy binary is looked for when the launcher's environment has no PATH.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
SYSTEM_BUS = "/run/dbus/system_bus_socket"
#: How long the proxy may take to say its sockets listen.  Generous: a loaded
#: machine is slow, and a proxy that cannot start says so at once anyway.
READY_TIMEOUT = 10.0
#: Lines of the proxy's output kept (when not relayed) to explain a failed start.
KEEP_LINES = 20

#: The socket directory in the instance directory, and the sockets in it.
DIR = "dbus"
SESSION_SOCKET = "bus"
SYSTEM_SOCKET = "system_bus_socket"

# Paths inside the proxy's own container (short: a unix socket path has 108 bytes).
_IN_SESSION = "/run/upstream/session"
_IN_SYSTEM = "/run/upstream/system"
_IN_OUT = "/run/proxy"


# --- addresses -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """One local bus: a socket path, or an abstract socket name (exactly one is set)."""

    path: str | None = None
    abstract: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:path={escape_value(self.path)}"
        assert self.abstract is not None
        return f"unix:abstract={escape_value(self.abstract)}"


#: Bytes a D-Bus address value may hold unescaped (libdbus's "optionally escaped" set).
_PLAIN = frozenset(b"-_/.\\*0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_KEY = re.compile(r"[a-z]+")
#: A unix socket address has 108 bytes, the abstract name's leading NUL among them.
ABSTRACT_MAX = 107


def escape_value(value: str) -> str:
    """``value`` as a D-Bus address value: bytes outside the plain set as ``%XX``."""
    return "".join(
        chr(b) if b in _PLAIN else f"%{b:02x}" for b in value.encode("utf-8", "surrogateescape")
    )


def _unescape(value: str, where: str) -> str:
    """A D-Bus address value decoded as libdbus does: strictly, ``%XX`` or the plain set."""
    out = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "%":
            pair = value[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise EnableError(f"{where}: bad %-escape in the bus address")
            out.append(int(pair, 16))
            i += 3
            continue
        if ord(ch) not in _PLAIN:
            raise EnableError(f"{where}: character {q(ch)} in the bus address must be %-escaped")
        out.append(ord(ch))
        i += 1
    if b"\0" in out:
        raise EnableError(f"{where}: the bus address holds a NUL byte")
    return out.decode("utf-8", "surrogateescape")


def parse_address(text: str, where: str) -> Address:
    """The first local entry of a D-Bus address list, or one line saying why there is none.

    ``where`` names the source in messages (``DBUS_SESSION_BUS_ADDRESS``).
    Only ``unix:path=`` and ``unix:abstract=`` (each with an optional
    ``guid=``) reach a bus this machine's proxy can serve; ``tcp:``,
    ``unixexec:``, ``autolaunch:`` and the listen-only ``unix:tmpdir=`` /
    ``dir=`` / ``runtime=`` forms are refused.  libdbus tries the entries of
    a ``;``-list in order; so do we, taking the first we can use.
    """
    if len(text) > 4096:
        raise EnableError(f"{where}: the bus address is longer than 4096 characters")
    entries = [e for e in text.split(";") if e]
    if not entries:
        raise EnableError(f"{where}: the bus address is empty")
    first: EnableError | None = None
    for entry in entries:
        try:
            return _parse_entry(entry, where)
        except EnableError as e:
            first = first or e
    assert first is not None
    raise first


def _parse_entry(entry: str, where: str) -> Address:
    method, colon, rest = entry.partition(":")
    if not colon:
        raise EnableError(f"{where}: {q(entry)} is not a bus address (no transport:)")
    if method != "unix":
        raise EnableError(
            f"{where}: transport {q(method)} is not supported (only a local unix:path= "
            "or unix:abstract= bus)"
        )
    values: dict[str, str] = {}
    for pair in rest.split(","):
        key, eq, value = pair.partition("=")
        if not eq or not _KEY.fullmatch(key):
            raise EnableError(f"{where}: {q(pair)} in the bus address is not key=value")
        if key in values:
            raise EnableError(f"{where}: {key}= given twice in the bus address")
        values[key] = _unescape(value, where)
    unknown = set(values) - {"path", "abstract", "guid"}
    if unknown:
        raise EnableError(
            f"{where}: unix:{min(unknown)}= is not an address a client can connect to "
            "(only path= or abstract=)"
        )
    if ("path" in values) == ("abstract" in values):
        raise EnableError(f"{where}: a unix bus address needs exactly one of path= or abstract=")
    if "path" in values:
        path = values["path"]
        if not path.startswith("/") or len(path.encode("utf-8", "surrogateescape")) >= 4096:
            raise EnableError(f"{where}: socket path {q(path)} is not an absolute path")
        return Address(path=path)
    name = values["abstract"]
    if not name or len(name.encode("utf-8", "surrogateescape")) > ABSTRACT_MAX:
        raise EnableError(f"{where}: abstract socket name {q(name)} is empty or too long")
    return Address(abstract=name)


def session_address(env: Mapping[str, str]) -> Address:
    """The session bus the launcher's environment names (reference launcher.md §2.4)."""
    text = env.get("DBUS_SESSION_BUS_ADDRESS")
    if text is not None:
        return parse_address(text, "dbus: DBUS_SESSION_BUS_ADDRESS")
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if not runtime.startswith("/"):
        raise EnableError(
            "dbus: no session bus (neither DBUS_SESSION_BUS_ADDRESS nor an absolute "
            "XDG_RUNTIME_DIR is set)"
        )
    return Address(path=os.path.join(runtime, "bus"))


def system_address(env: Mapping[str, str]) -> Address:
    """The system bus: ``DBUS_SYSTEM_BUS_ADDRESS``, else Debian's well-known socket."""
    text = env.get("DBUS_SYSTEM_BUS_ADDRESS")
    if text is not None:
        return parse_address(text, "dbus: DBUS_SYSTEM_BUS_ADDRESS")
    return Address(path=SYSTEM_BUS)


def _check_socket(address: Address, bus: str) -> None:
    """A path address must name a socket now (an abstract one cannot be looked at)."""
    if address.path is None:
        return
    try:
        st = os.stat(address.path)
    except OSError as e:
        raise EnableError(
            f"dbus: no {bus} bus at {q(address.path)}: {os.strerror(e.errno or 0)}"
        ) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise EnableError(f"dbus: {bus} bus {q(address.path)} is not a socket")


def find_proxy(env: Mapping[str, str]) -> str:
    """The proxy binary on the launcher's PATH (real path), or one line saying how to get it."""
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        if not d.startswith("/"):
            continue  # a relative PATH entry would depend on the launcher's cwd
        candidate = os.path.join(d, PROXY)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    raise EnableError(f"dbus: {PROXY} not found on PATH (install the {PROXY} package)")


# --- rules -----------------------------------------------------------------------------


def check_rules(bus: BusConfig, where: str) -> None:
    """Every name and rule as the proxy reads them (a config built in code skipped check.py)."""
    for key in ("see", "talk", "own"):
        for name in getattr(bus, key):
            problem = bus_name_problem(name)
            if problem is not None:
                raise EnableError(f"{where}.{key}: {q(name)} {problem}")
    for key in ("call", "broadcast"):
        for name, rule in getattr(bus, key).items():
            problem = bus_name_problem(name)
            if problem is None:
                problem = rule_problem(rule)
                if problem is not None:
                    problem = f"rule {q(rule)} {problem}"
            if problem is not None:
                raise EnableError(f"{where}.{key}[{q(name)}]: {problem}")


def bus_args(upstream: str, socket: str, bus: BusConfig) -> list[str]:
    """One bus's proxy arguments, in hakurei's order.

    The proxy applies the options after an ``ADDRESS PATH`` pair to that pair,
    so the pair comes first: ``--filter``, then see, talk, own, call,
    broadcast, then ``--log``.
    """
    args = [upstream, socket]
    if bus.filter:
        args.append("--filter")
    for key in ("see", "talk", "own"):
        args += [f"--{key}={name}" for name in getattr(bus, key)]
    for key in ("call", "broadcast"):
        args += [f"--{key}={name}={rule}" for name, rule in getattr(bus, key).items()]
    if bus.log:
        args.append("--log")
    return args


def encode_args(args: Sequence[str]) -> bytes:
    """The ``--args=FD`` payload: each argument followed by a NUL."""
    out = bytearray()
    for arg in args:
        data = arg.encode("utf-8", "surrogateescape")
        if b"\0" in data:
            raise EnableError(f"dbus: proxy argument {q(arg)} holds a NUL byte")
        out += data + b"\0"
    return bytes(out)


# --- the enablement --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``check`` found and ``prepare`` uses."""

    binary: str
    session: Address
    session_rules: BusConfig
    system: Address | None
    system_rules: BusConfig | None

    @property
    def log(self) -> bool:
        """Relay the proxy's output: some bus asked for ``--log``."""
        return self.session_rules.log or bool(self.system_rules and self.system_rules.log)


def plan(session: Session) -> Plan:
    """Read the host and the config; ``EnableError`` for anything the proxy would refuse."""
    config = session.config
    binary = find_proxy(session.host_env)
    rules = config.session_bus
    if rules is None:
        rules = default_session_bus(config.id)
    check_rules(rules, "session_bus")
    upstream = session_address(session.host_env)
    _check_socket(upstream, "session")
    system: Address | None = None
    if config.system_bus is not None:
        check_rules(config.system_bus, "system_bus")
        system = system_address(session.host_env)
        _check_socket(system, "system")
    return Plan(binary, upstream, rules, system, config.system_bus)


def proxy_args(p: Plan) -> list[str]:
    """The proxy's arguments (after ``--fd``/``--args``) as its container sees the paths."""
    upstream = str(Address(path=_IN_SESSION)) if p.session.path else str(p.session)
    args = bus_args(upstream, f"{_IN_OUT}/{SESSION_SOCKET}", p.session_rules)
    if p.system is not None and p.system_rules is not None:
        upstream = str(Address(path=_IN_SYSTEM)) if p.system.path else str(p.system)
        args += bus_args(upstream, f"{_IN_OUT}/{SYSTEM_SOCKET}", p.system_rules)
    return args


def proxy_ops(p: Plan, out_dir: str) -> Ops:
    """The proxy's filesystem: ``/usr`` and merged-usr links, its sockets, nothing else."""
    from .helper import base_ops

    ops = base_ops(programs=(p.binary,))
    if p.session.path is not None:
        ops.bind(p.session.path, _IN_SESSION)
    if p.system is not None and p.system.path is not None:
        ops.bind(p.system.path, _IN_SYSTEM)
    ops.bind(out_dir, _IN_OUT, BIND_WRITABLE)
    return ops.remount("/", MS_RDONLY)


def grant(p: Plan, session: Session) -> Grant:
    """The app's view: the proxy's sockets where clients look, never the real buses."""
    from ..ops import Bind

    out = os.path.join(session.instance_dir, DIR)
    inside = f"{session.runtime.rstrip('/')}/bus"
    g = Grant()
    g.ops.append(Bind(f"{out}/{SESSION_SOCKET}", inside, 0))
    g.env["DBUS_SESSION_BUS_ADDRESS"] = str(Address(path=inside))
    filtered = "filtered" if p.session_rules.filter else "unfiltered"
    g.notes.append(f"dbus: session bus {p.session} through {PROXY} ({filtered})")
    if p.system is not None and p.system_rules is not None:
        g.ops.append(Bind(f"{out}/{SYSTEM_SOCKET}", SYSTEM_BUS, 0))
        g.env["DBUS_SYSTEM_BUS_ADDRESS"] = str(Address(path=SYSTEM_BUS))
        filtered = "filtered" if p.system_rules.filter else "unfiltered"
        g.notes.append(f"dbus: system bus {p.system} through {PROXY} ({filtered})")
    return g


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class DBus:
    """``enablements.dbus``: session (and optionally system) bus through a contained proxy."""

    name = "dbus"

    def __init__(self, relay: Callable[[str], None] = _stderr_line) -> None:
        #: where ``(dbus) `` lines go when logging is on (stderr; tests catch them)
        self.relay = relay
        self._plan: Plan | None = None
        #: the proxy's container pid once started (for tests and ``-v``)
        self.pid: int | None = None

    def check(self, session: Session) -> None:
        self._plan = plan(session)

    async def prepare(self, session: Session) -> Grant:
        p = self._plan if self._plan is not None else plan(session)
        if session.nursery is None:
            raise EnableError("dbus: no nursery for the proxy (a launcher bug)")
        try:
            g: Grant = await session.nursery.start(self._proxy, session, p)
        except BaseExceptionGroup as group:
            raise _unwrapped(group) from None
        return g

    async def _proxy(
        self,
        session: Session,
        p: Plan,
        task_status: trio.TaskStatus[Grant] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start the proxy, report its grant once it listens, then serve until cancelled."""
        j = session.journal
        j.record("remove", path=DIR)
        os.mkdir(DIR, 0o700, dir_fd=session.instance_dir_fd)
        j.record("remove", path=f"{DIR}/{SESSION_SOCKET}")
        if p.system is not None:
            j.record("remove", path=f"{DIR}/{SYSTEM_SOCKET}")
        payload = encode_args(proxy_args(p))
        abstract = p.session.abstract is not None or bool(p.system and p.system.abstract)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        args_r, args_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        mine = [ready_r, args_w, out_r]
        theirs = [ready_w, args_r, out_w]
        kept: collections.deque[str] = collections.deque(maxlen=KEEP_LINES)
        relayed = trio.Event()
        try:
            c = Container(
                p.binary,
                [PROXY, "--fd=3", "--args=4"],
                stdout=out_w,
                stderr=out_w,
                extra_files=[ready_w, args_r],
                ops=proxy_ops(p, os.path.join(session.instance_dir, DIR)),
                env={},
                uid=session.uid,
                gid=session.gid,
                hostname="hakurei-dbus",
                seccomp_presets=EVERYDAY,
                # An abstract socket lives in a network namespace: the host's.
                host_net=abstract,
                host_abstract=abstract,
                wait_delay=2.0,
                # A terminal's Ctrl-C goes to the launcher alone, which passes it
                # on to the app: the app may still use the bus while it quits.
                process_group=True,
            )
            # Entering starts it, blocked on its setup pipe; leaving (cancelled,
            # or failed) cancels and reaps it.
            async with c, trio.open_nursery() as inner:
                for fd in theirs:
                    os.close(fd)
                theirs = []
                assert c.pid is not None
                start = journal.starttime(c.pid)
                if start is not None:  # None: already dead, nothing to kill later
                    j.record("kill", pid=c.pid, starttime=start)
                self.pid = c.pid
                try:
                    await c.serve()
                except StartError as e:
                    raise EnableError(f"dbus: cannot start {PROXY}: {e}") from None
                mine.remove(args_w)
                inner.start_soon(self._feed, args_w, payload)
                mine.remove(out_r)
                inner.start_soon(self._relay, out_r, kept, p.log, relayed)
                await self._ready(ready_r, kept, relayed)
                task_status.started(grant(p, session))
                try:
                    status = await c.wait()
                except HakureiError as e:  # its spawner died: say so, the app goes on
                    self.relay(f"(dbus) {PROXY}: {e}")
                    return
                if status != 0:
                    self.relay(f"(dbus) {PROXY} exited with status {status}")
        except StartError as e:  # spawning it failed: no shim, nothing to undo yet
            raise EnableError(f"dbus: cannot start {PROXY}: {e}") from None
        except BaseExceptionGroup as group:
            raise _unwrapped(group) from None
        finally:
            for fd in mine + theirs:
                os.close(fd)

    @staticmethod
    async def _feed(fd: int, payload: bytes) -> None:
        """Write the arguments, then EOF: the proxy reads ``--args`` to its end at start."""
        async with trio.lowlevel.FdStream(fd) as stream:
            try:
                await stream.send_all(payload)
            except trio.BrokenResourceError:
                pass  # it died first; its output says why

    async def _relay(
        self, fd: int, kept: collections.deque[str], log: bool, done: trio.Event
    ) -> None:
        """The proxy's output, line by line: ``(dbus) `` lines when logging, else kept."""
        try:
            async with trio.lowlevel.FdStream(fd) as stream:
                pending = b""
                while chunk := await stream.receive_some(65536):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        self._line(raw, kept, log)
                    if len(pending) > 65536:  # a line without end: cut it, stay bounded
                        self._line(pending, kept, log)
                        pending = b""
                if pending:
                    self._line(pending, kept, log)
        finally:
            done.set()

    def _line(self, raw: bytes, kept: collections.deque[str], log: bool) -> None:
        # The proxy logs names and paths the app chose: escaped before a terminal sees them.
        line = safe_line(raw.decode("utf-8", "surrogateescape").rstrip("\r"))
        kept.append(line)
        if log:
            self.relay(f"(dbus) {line}")

    @staticmethod
    async def _ready(
        ready_r: int,
        kept: collections.deque[str],
        relayed: trio.Event,
        timeout: float = READY_TIMEOUT,
    ) -> None:
        """Wait for the ready byte; one line with the proxy's own last words if it fails."""
        with trio.move_on_after(timeout):
            await trio.lowlevel.wait_readable(ready_r)
            if os.read(ready_r, 1):
                return
            # EOF: it exited before listening, and its output ends with the
            # reason; the relay has it once the output pipe ends too.
            with trio.move_on_after(2.0):
                await relayed.wait()
            why = kept[-1] if kept else "no message"
            raise EnableError(f"dbus: {PROXY} did not start: {why}")
        raise EnableError(f"dbus: {PROXY} did not say it was ready within {timeout:g} s")
