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
import os
from typing import Any

from hakurei.init.kernel import Kernel

_SIGNATURES = {
    name: inspect.signature(fn)
    for name, fn in inspect.getmembers(Kernel, inspect.isfunction)
    if not name.startswith("_")
}
_METHODS = frozenset(_SIGNATURES)


def _positional(name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
    """The arguments given, in the method's parameter order, however they were passed.

    ``posix_spawn(path, argv, env, setsid=True, ...)`` and the same values all
    positional record alike, so the code under test may use keywords (as it
    does for keyword-only parameters) and an expected call need not.  Defaults
    are not filled in: a call that omits an argument differs from one that
    passes it.
    """
    if not kw:
        return args
    bound = _SIGNATURES[name].bind(None, *args, **kw)  # None: self
    return tuple(bound.arguments.values())[1:]


class Call:
    def __init__(self, name: str, args: tuple[Any, ...], ret: Any, err: BaseException | None):
        if name not in _METHODS:
            raise AssertionError(f"Kernel has no method {name!r}")
        self.name, self.args, self.ret, self.err = name, args, ret, err

    def __repr__(self) -> str:
        return f"{self.name}{self.args!r}"


def call(
    name: str, *args: Any, ret: Any = None, err: BaseException | None = None, **kw: Any
) -> Call:
    if name not in _METHODS:
        raise AssertionError(f"Kernel has no method {name!r}")
    return Call(name, _positional(name, args, kw), ret, err)


class FakeKernel(Kernel):
    def __init__(self, calls: list[Call]) -> None:
        self.expected = list(calls)
        self.pos = 0

    def __getattribute__(self, name: str) -> Any:
        if name in _METHODS:
            return lambda *args, **kw: object.__getattribute__(self, "_call")(
                name, _positional(name, args, kw)
            )
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


class Exited(BaseException):
    """What the fake's ``exit`` raises (see ``exits``): the status, out to the test.

    A BaseException, so no ``except Exception`` in the code under test can
    mistake the end of the process for an error and carry on.
    """

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def exits(status: int) -> Call:
    """The expected last call of a process, ``exit(status)``: it never returns."""
    return call("exit", status, err=Exited(status))


#: seam calls whose int return value is a new file descriptor the caller must close
OPENERS = frozenset(
    (
        "open",
        "openat",
        "openat2",
        "open_in",
        "mkdir_in",
        "file_in",
        "open_tree",
        "open_tree_fd",
        "fsmount",
    )
)


def oserror(err: int, filename: str | None = None) -> OSError:
    """What the real kernel seam raises: a typed OSError subclass for ``err``."""
    return OSError(err, os.strerror(err), filename) if filename else OSError(err, os.strerror(err))


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


class RecordingReport:
    """The ``Report`` a caller may pass the shim (the CLI's --info-fd): what it was told."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.statuses: list[int] = []
        self.ran: list[bool] = []

    def started(self, pid: int) -> None:
        raise AssertionError("the relay starts nothing")

    def exited(self, status: int) -> None:
        self.statuses.append(status)

    def exit_status(self, status: int, ran: bool) -> int:
        self.ran.append(ran)
        return status
