"""The program a container gets: compiled ahead for the defaults, else once per process.

``filter_for`` is what a container start calls (``Params`` in the parent, the
CLI's ``--format bpf``): settings in, BPF and rule count out.  The default
settings' programs were compiled ahead by libseccomp and ship in the package
(``prebuilt``): on the machine and libseccomp they were made with, such a
start loads neither the rule modules nor the compiler (~1.5 ms of every
``hakurei exec``).  Any other start compiles on first use in its process
(~0.3 ms for STRICT once libseccomp is loaded) and keeps the result here.
Nothing is read from or written to the user's directories: a cache there
could be rewritten by any container that has them bound writable, and the
next container would load what it left there.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .rules import Rule

#: Compiled programs by (flags, rules), for the life of this process only.  Never
#: on disk: a file the user can write is a file a container with the user's home
#: bound writable can write, and the next container would load what it left.
_MEMORY: dict[tuple[int, tuple[Rule, ...]], tuple[bytes, int]] = {}


def cache_clear() -> None:
    """Forget the in-memory cache (benchmarks and tests)."""
    _MEMORY.clear()


def filter_for(
    *,
    presets: int,
    flags: int,
    rules: Sequence[Rule] | None = None,
    retain_session: bool = False,
    disable: bool = False,
) -> tuple[bytes | None, int]:
    """The BPF program a container gets, and how many rules it holds.

    Go semantics: ``disable`` skips everything, including the socket rules
    (``(None, 0)``); see ``resolve`` for the implicit changes.  The count
    excludes the appended rules (socket allowlist, ``appended_rules``), as
    Go's ``%d filter rules loaded`` excludes the socket rules.
    """
    if disable:
        return None, 0
    if not rules:
        hit = prebuilt(presets, flags, retain_session)
        if hit is not None:
            return hit
    return compile_for(presets=presets, flags=flags, rules=rules, retain_session=retain_session)


def prebuilt(presets: int, flags: int, retain_session: bool) -> tuple[bytes, int] | None:
    """The program compiled ahead for these settings, if this machine's libseccomp made it."""
    from . import prebuilt as ahead

    hit = ahead.PROGRAMS.get((presets, flags, retain_session))
    if hit is None or not _made_here():
        return None
    return hit


#: Whether this machine and its libseccomp are the ones the table was compiled
#: with (None: not asked yet): asked once per process, where a library
#: caller may start a container, and so ask, thousands of times.
_MADE_HERE: bool | None = None


def _made_here() -> bool:
    global _MADE_HERE
    if _MADE_HERE is None:
        from . import prebuilt as ahead
        from .library import libseccomp_version

        same_machine = os.uname().machine == ahead.MACHINE
        _MADE_HERE = same_machine and libseccomp_version() == ahead.LIBSECCOMP
    return _MADE_HERE


def compile_for(
    *, presets: int, flags: int, rules: Sequence[Rule] | None, retain_session: bool
) -> tuple[bytes, int]:
    """Resolve and compile with libseccomp, once per process for each (flags, rules)."""
    from .compile import compile_bpf
    from .presets import resolve

    presets, rs = resolve(presets=presets, flags=flags, rules=rules, retain_session=retain_session)
    key = (flags, tuple(rs))
    hit = _MEMORY.get(key)
    if hit is None:
        hit = _MEMORY[key] = (compile_bpf(rs, flags), len(rs))
    return hit
