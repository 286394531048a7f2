"""A recording fake of the syscall seam (Go ``kstub``).

A test lists the calls it expects, in order, with their arguments and what
each returns or raises; the code under test runs against the fake, and any
unexpected, out-of-order or missing call fails the test with both sides shown.

    k = FakeKernel([
        call("mount", "/host/usr", "/sysroot/usr", "", 0xD000, ""),
        call("stat", "/x", err=FileNotFoundError(2, "no such file", "/x")),
    ])
    op.apply(State(k))
    k.done()
"""

from __future__ import annotations

import inspect
from typing import Any

from hakurei.init.kernel import Kernel

_METHODS = frozenset(
    name for name, _ in inspect.getmembers(Kernel, inspect.isfunction) if not name.startswith("_")
)


class Call:
    def __init__(self, name: str, args: tuple[Any, ...], ret: Any, err: BaseException | None):
        if name not in _METHODS:
            raise AssertionError(f"Kernel has no method {name!r}")
        self.name, self.args, self.ret, self.err = name, args, ret, err

    def __repr__(self) -> str:
        return f"{self.name}{self.args!r}"


def call(name: str, *args: Any, ret: Any = None, err: BaseException | None = None) -> Call:
    return Call(name, args, ret, err)


class FakeKernel(Kernel):
    def __init__(self, calls: list[Call]) -> None:
        self.expected = list(calls)
        self.pos = 0

    def __getattribute__(self, name: str) -> Any:
        if name in _METHODS:
            return lambda *args: object.__getattribute__(self, "_call")(name, args)
        return object.__getattribute__(self, name)

    def _call(self, name: str, args: tuple[Any, ...]) -> Any:
        if self.pos >= len(self.expected):
            raise AssertionError(f"unexpected call {name}{args!r} after the last expected call")
        want = self.expected[self.pos]
        if (want.name, want.args) != (name, args):
            raise AssertionError(f"call {self.pos}: got {name}{args!r}, want {want!r}")
        self.pos += 1
        if want.err is not None:
            raise want.err
        return want.ret

    def done(self) -> None:
        """Fail unless every expected call happened."""
        if self.pos != len(self.expected):
            raise AssertionError(f"missing calls: {self.expected[self.pos :]!r}")


#: seam calls whose int return value is a new file descriptor the caller must close
OPENERS = frozenset(
    ("open", "openat", "openat2", "open_in", "mkdir_in", "file_in", "open_tree", "fsmount")
)


def failing(calls: list[Call], at: int, err: BaseException) -> list[Call]:
    """``calls`` cut at index ``at``, which raises ``err``, then the clean-up it must cause.

    The clean-up is one ``close`` of every fd an earlier call of ``calls``
    returned and no earlier ``close`` (nor the failing one) closed, newest
    first, as nested ``try``/``finally`` blocks do.  So a test says "this step
    fails" and the fake checks that nothing opened so far leaks.
    """
    want = [*calls[:at], call(calls[at].name, *calls[at].args, err=err)]
    live: list[int] = []
    for c in want:
        if c.name == "close" and c.args[0] in live:
            live.remove(c.args[0])
        elif c.name in OPENERS and c.err is None and isinstance(c.ret, int):
            live.append(c.ret)
    return want + [call("close", fd) for fd in reversed(live)]
