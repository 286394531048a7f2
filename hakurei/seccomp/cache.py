"""The program a container gets, compiled once per process and kept in memory only.

``filter_for`` is what a container start calls (``Params`` in the parent, the
CLI's ``--format bpf``): settings in, BPF and rule count out.  Every process
that starts containers compiles on first use (~0.3 ms for STRICT once
libseccomp is loaded) and keeps the result here.  Nothing is read from or
written to disk: a cache in the user's directories could be rewritten by any
container that has them bound writable, and the next container would load
what it left there.
"""

from __future__ import annotations

from .compile import compile_bpf
from .presets import resolve

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
    Go's ``%d filter rules loaded`` excludes the socket rules.  Compiled on the
    first call in a process (~0.3 ms for STRICT) and kept in memory.
    """
    if disable:
        return None, 0
    presets, rs = resolve(presets=presets, flags=flags, rules=rules, retain_session=retain_session)
    key = (flags, tuple(rs))
    hit = _MEMORY.get(key)
    if hit is None:
        hit = _MEMORY[key] = (compile_bpf(rs, flags), len(rs))
    return hit
