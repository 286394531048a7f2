"""What every op shares: wire fields, validation, equality, and the setup state.

An op is a small value object.  Its user-facing fields are declared once in
``FIELDS`` as ``(name, kind)`` pairs; that one declaration drives the
constructor-side validation, equality (Go ``Is``), and the msgpack wire form,
so a field cannot be forgotten in one of them.  Derived state (what ``early``
learns on the host) lives in other slots and never travels.

Init imports this for every container, so it avoids ``typing``,
``dataclasses`` and ``enum`` at runtime.
"""

from __future__ import annotations

import posixpath

from ..errors import AbsoluteError, OpError
from ..errors import q as q  # re-exported: the ops quote with it

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, ClassVar, Self, TypeVar

    from ..init.kernel import Kernel

    _O = TypeVar("_O", bound="Op")

SYSROOT = "/sysroot"
HOST = "/host"
HOST_PROC_SELF = "/host/proc/self"

# Field kinds understood by check_field.
ABS = "abs"  # absolute path (str)
DEST = "dest"  # absolute path inside the container, normalised when the op is built
ABS_OPT = "abs?"  # absolute path or None
ABS_LIST = "abs[]"  # list of absolute paths
STR = "str"
INT = "int"
BOOL = "bool"
BYTES = "bytes"


def is_abs(p: object) -> bool:
    return isinstance(p, str) and p.startswith("/") and "\0" not in p


def normalise_dest(op: str, path: str) -> str:
    """``/a/./b//c/../d/`` → ``/a/b/d``; a ``..`` that climbs above ``/`` is an OpError.

    Destinations are paths in the container, resolved inside its root by
    init; lexical ``..`` is settled here, when the op is built, so the op's
    text shows the path that will be used and nothing in the wire form can
    name a place above the container's root.
    """
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise OpError(f"{op}: path {q(path)} climbs above /")
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def check_field(op: str, name: str, kind: str, value: object) -> None:
    """Raise OpError unless ``value`` is of ``kind``; the message names op and field."""
    if kind in (ABS, DEST) or (kind == ABS_OPT and value is not None):
        if not isinstance(value, str):
            raise OpError(f"{op}: {name} must be a path, not {type(value).__name__}")
        if not is_abs(value):
            raise OpError(f"{op}: {AbsoluteError(value)}")
    elif kind == ABS_LIST:
        if not isinstance(value, list):
            raise OpError(f"{op}: {name} must be a list of paths")
        for v in value:
            check_field(op, name, ABS, v)
    elif kind == STR:
        if not isinstance(value, str) or "\0" in value:
            raise OpError(f"{op}: {name} must be a string without NUL")
    elif kind == INT:
        if not isinstance(value, int) or isinstance(value, bool):
            raise OpError(f"{op}: {name} must be an integer")
    elif kind == BOOL:
        if not isinstance(value, bool):
            raise OpError(f"{op}: {name} must be a boolean")
    elif kind == BYTES:
        if not isinstance(value, bytes):
            raise OpError(f"{op}: {name} must be bytes")
    elif kind != ABS_OPT:
        raise AssertionError(f"unknown field kind {kind}")


def to_sysroot(p: str) -> str:
    """Container path → where it is built during apply (``//etc///`` → ``/sysroot/etc``)."""
    return posixpath.normpath(posixpath.join(SYSROOT, p.lstrip("/")))


def to_host(p: str) -> str:
    """Host path → where the host tree is visible during apply (under ``/host``)."""
    return posixpath.normpath(posixpath.join(HOST, p.lstrip("/")))


def parent_perm(perm: int, base: int = 0o755) -> int:
    """Permissions for parents created on the way to a path of mode ``perm``.

    Start from ``base`` (the setup's parent perm, 0755 by default) and drop
    group/other access where the path itself grants nothing to them, so a
    private directory is not reachable through a world-readable parent
    (reference §6.3).  bubblewrap makes the parents of its ``--dir``,
    ``--tmpfs``, ``--file`` and ``--bind-data`` the same way.
    """
    p = base
    if not perm & 0o070:
        p &= ~0o050
    if not perm & 0o007:
        p &= ~0o005
    return p


class State:
    """What ops share during one init run (Go ``setupState``)."""

    __slots__ = ("_serial", "k", "nonrepeatable", "parent_perm", "retain_session", "verbose")

    def __init__(
        self,
        k: Kernel,
        *,
        parent_perm: int = 0o755,
        retain_session: bool = False,
        verbose: Callable[[str], None] | None = None,
    ) -> None:
        self.k = k
        self.parent_perm = parent_perm
        self.retain_session = retain_session
        self.verbose: Callable[[str], None] = verbose or (lambda _msg: None)
        #: names of non-repeatable ops already applied ("autoetc", "autoroot")
        self.nonrepeatable: set[str] = set()
        self._serial = 0

    def tmpname(self, prefix: str) -> str:
        """A fresh name in the intermediate root, e.g. ``/tmp.0``, for Place and Overlay.

        A counter rather than random bytes: the intermediate root is private to
        this init run, and the fake kernel can predict the name.
        """
        name = f"/{prefix}{self._serial}"
        self._serial += 1
        return name

    def once(self, name: str) -> None:
        """Fail with OpRepeatError if a non-repeatable op named ``name`` ran already."""
        from ..errors import OpRepeatError

        if name in self.nonrepeatable:
            raise OpRepeatError(name)
        self.nonrepeatable.add(name)


class Op:
    """Base of every op.  Subclasses set TAG, PREFIX and FIELDS and implement apply."""

    #: wire tag; also the key of REGISTRY
    TAG: ClassVar[str] = ""
    #: verb init prints before ``str(op)`` with -v; "" when the op prints its own lines
    PREFIX: ClassVar[str] = ""
    #: user-facing fields as (name, kind); order is the constructor's order
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = ()

    __slots__ = ()

    def validate(self) -> None:
        """Check field kinds, normalise destinations, then ``check()``; raise OpError."""
        for name, kind in self.FIELDS:
            value = getattr(self, name)
            check_field(self.TAG, name, kind, value)
            if kind == DEST:
                object.__setattr__(self, name, normalise_dest(self.TAG, value))
        self.check()

    def check(self) -> None:
        """Op-specific structural checks beyond field kinds (Go ``Valid``)."""

    def early(self, st: State) -> None:
        """Host-view step: gather information, never change the mount namespace."""

    def apply(self, st: State) -> None:
        """Build this op's part of the container under /sysroot."""
        raise NotImplementedError

    def to_wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name, _ in self.FIELDS}

    @classmethod
    def from_wire(cls, fields: object) -> Self:
        """Rebuild an op from its wire map; every field is type-checked."""
        if not isinstance(fields, dict):
            raise OpError(f"{cls.TAG}: fields must be a map")
        names = {n for n, _ in cls.FIELDS}
        extra = set(fields) - names
        if extra:
            raise OpError(f"{cls.TAG}: unknown field {sorted(map(str, extra))[0]!r}")
        missing = names - set(fields)
        if missing:
            raise OpError(f"{cls.TAG}: missing field {sorted(missing)[0]!r}")
        op = cls.__new__(cls)
        op._init_derived()
        for name, _ in cls.FIELDS:
            object.__setattr__(op, name, fields[name])
        op.validate()
        return op

    def _init_derived(self) -> None:
        """Reset derived (non-wire) slots; subclasses with derived state override."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n, _ in self.FIELDS)

    def __hash__(self) -> int:
        return hash((self.TAG, *(repr(getattr(self, n)) for n, _ in self.FIELDS)))

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n, _ in self.FIELDS)
        return f"{type(self).__name__}({args})"


#: Wire tag → the module of this package that defines the op and registers it.
#: The decoder imports a module only when a record names its tag, so a shim or
#: a CLI run loads only the ops it uses; a tag that is not here is refused
#: before anything is imported or mounted.  A unit test checks that each
#: module registers exactly the tags listed for it.
MODULES = {
    "bind": "bind",
    "symlink": "link",
    "mkdir": "mkdir",
    "tmpfs": "tmpfs",
    "proc": "proc",
    "dev": "dev",
    "place": "place",
    "remount": "remount",
    "overlay": "overlay",
    "autoetc": "etc",
    "autoroot": "root",
    "chmod": "chmod",
    "file": "file",
    "mqueue": "mqueue",
    "lock": "lock",
}
_PACKAGE = __name__.rpartition(".")[0]


class Registry:
    """Op classes by wire tag, each filled in by ``@register`` when its module is imported.

    Reads like the dict it replaces (``get``, ``[]``, ``in``, iteration over
    the tags), but looking a tag up imports that op's module on first use;
    only ``values()`` and ``items()`` import them all.
    """

    __slots__ = ("_classes",)

    def __init__(self) -> None:
        self._classes: dict[str, type[Op]] = {}

    def add(self, cls: type[Op]) -> None:
        """Record ``cls`` under its tag; its module must be the one ``MODULES`` names."""
        module = MODULES.get(cls.TAG)
        if module is None or cls.__module__ != f"{_PACKAGE}.{module}":
            raise AssertionError(f"op {cls.__qualname__}: tag {cls.TAG!r} is not in MODULES")
        if self._classes.setdefault(cls.TAG, cls) is not cls:
            raise AssertionError(f"op tag {cls.TAG!r} registered twice")

    def get(self, tag: object, default: type[Op] | None = None) -> type[Op] | None:
        """The op class of wire tag ``tag``, its module imported if need be; else ``default``."""
        if not isinstance(tag, str):
            return default
        cls = self._classes.get(tag)
        if cls is None:
            module = MODULES.get(tag)
            if module is None:
                return default
            __import__(f"{_PACKAGE}.{module}")
            cls = self._classes[tag]
        return cls

    def __getitem__(self, tag: str) -> type[Op]:
        cls = self.get(tag)
        if cls is None:
            raise KeyError(tag)
        return cls

    def __contains__(self, tag: object) -> bool:
        return isinstance(tag, str) and tag in MODULES

    def __iter__(self) -> Iterator[str]:
        return iter(MODULES)

    def __len__(self) -> int:
        return len(MODULES)

    def keys(self) -> list[str]:
        return list(MODULES)

    def values(self) -> list[type[Op]]:
        return [self[tag] for tag in MODULES]

    def items(self) -> list[tuple[str, type[Op]]]:
        return [(tag, self[tag]) for tag in MODULES]

    def __repr__(self) -> str:
        loaded = ", ".join(sorted(self._classes))
        return f"<op registry: {len(MODULES)} tags, loaded: {loaded}>"


#: Every op class by wire tag (``REGISTRY.get(tag)``); init decodes ops through it.
REGISTRY = Registry()


def register(cls: type[_O]) -> type[_O]:
    """Class decorator of every op: file it in ``REGISTRY`` under its ``TAG``."""
    REGISTRY.add(cls)
    return cls
