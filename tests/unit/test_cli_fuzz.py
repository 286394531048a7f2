"""Fuzzing the command line and the op values: a valid result or one typed, one-line error.

``exec_setup`` is everything ``hakurei exec`` does before it spawns, so it
runs in-process here on random option lists; a smaller set of real
``hakurei exec`` runs checks what the user sees (one line, 125, no traceback).
The op constructors and ``Params`` get arbitrary values and may raise only
``OpError`` (``ParamsError`` is one).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hakurei.cli import OP_OPTIONS, VALUE_OPTIONS, exec_setup
from hakurei.errors import HakureiError, OpError
from hakurei.ops import REGISTRY, Ops
from hakurei.params import Params
from hakurei.wire import Setup

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Text as argv can hold it: no NUL, any other code point, and surrogate
#: escapes (how Python shows argv bytes that are not UTF-8).
ARG_TEXT = st.text(
    st.one_of(
        st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
        st.sampled_from(["\x1b", "\x07", "\r", "\n", "\x7f", "\x9b", "\u202e"]),
        st.integers(0xDC80, 0xDCFF).map(chr),
    ),
    max_size=80,
)
NUMBERS = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["0", "-0", "4294967295", "4294967296", "1e300", "1e400", "0x10", "0o17"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "NaN", " 5 ", "1_0", "٣"]),  # float() takes these
    st.just("9" * 5000),
)
PATHS = st.one_of(
    st.sampled_from(["/", "/tmp", "/dev/zero", "/etc/hostname", "/proc/self/status", "x", ""]),
    ARG_TEXT.map(lambda t: "/" + t),
)
VALUE = st.one_of(ARG_TEXT, NUMBERS, PATHS)
#: Op options that take an FD read, copy or close this very process's fds (fd 0
#: is pytest's stdin): they are not fuzzed in-process; their integration tests
#: give them real fds (tests/integration/test_cli_bwrap_ops.py).
FD_OPS = {name for name, metavars in OP_OPTIONS.items() if "FD" in metavars}
OPTIONS = sorted(
    {*OP_OPTIONS, *VALUE_OPTIONS, "--share-net", "--no-seccomp", "-v", "--help"} - FD_OPS
)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            argv.append("-" + draw(ARG_TEXT))  # an unknown option, maybe
        elif kind == 1:
            name = draw(st.sampled_from(sorted(VALUE_OPTIONS)))
            argv.append(f"{name}={draw(VALUE)}")
        else:
            name = draw(st.sampled_from(OPTIONS))
            n = len(OP_OPTIONS.get(name) or VALUE_OPTIONS.get(name) or ())
            argv += [name, *(draw(VALUE) for _ in range(draw(st.integers(max(0, n - 1), n))))]
    if draw(st.booleans()):
        argv.append("--")
    argv += draw(st.lists(st.one_of(PATHS, ARG_TEXT), max_size=3))
    return argv


def assert_one_line_error(e: BaseException) -> None:
    assert isinstance(e, HakureiError), f"{type(e).__name__}: {e}"
    text = str(e)
    assert text and text.isprintable(), repr(text)  # one line, every control byte escaped
    assert e.status == 125


@FAST
@given(command_lines())
def test_exec_command_line_is_a_setup_or_one_line_error(argv: list[str]) -> None:
    try:
        setup = exec_setup(argv)
    except Exception as e:
        assert_one_line_error(e)
    else:
        assert setup is None or isinstance(setup, Setup)


@FAST
@given(
    st.sampled_from(sorted(VALUE_OPTIONS)),
    st.one_of(NUMBERS, ARG_TEXT),
)
def test_every_value_option_takes_anything(option: str, value: str) -> None:
    """Each value option alone with a hostile value (the fuzz above mixes them)."""
    argv = [option, value, *(["v"] if option == "--setenv" else []), "--", "/bin/true"]
    try:
        exec_setup(argv)
    except Exception as e:
        assert_one_line_error(e)


# -- op values --------------------------------------------------------------------

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    ARG_TEXT,
    PATHS,
    st.binary(max_size=64),
    st.lists(PATHS, max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@FAST
@given(st.sampled_from(sorted(REGISTRY)), st.data())
def test_op_constructors_raise_only_op_error(tag: str, data: st.DataObject) -> None:
    cls = REGISTRY[tag]
    params = [
        p
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    kwargs = {p.name: data.draw(ANYTHING, label=p.name) for p in params}
    try:
        op = cls(**kwargs)
    except OpError as e:
        assert str(e).isprintable(), repr(str(e))
    else:  # -v prints str(op): no raw control byte may reach the terminal
        assert str(op).isprintable(), repr(str(op))


@FAST
@given(st.sampled_from(sorted(REGISTRY)), st.data())
def test_op_wire_fields_raise_only_op_error(tag: str, data: st.DataObject) -> None:
    cls = REGISTRY[tag]
    fields = {name: data.draw(ANYTHING, label=name) for name, _ in cls.FIELDS}
    try:
        cls.from_wire(fields)
    except OpError as e:
        assert str(e).isprintable(), repr(str(e))


PARAM_NAMES = [
    "args", "env", "dir", "uid", "gid", "hostname", "parent_perm", "adopt_wait_delay",
]  # fmt: skip


@FAST
@given(st.dictionaries(st.sampled_from(PARAM_NAMES), ANYTHING, max_size=4), PATHS)
def test_params_raise_only_op_error(kw: dict[str, Any], path: str) -> None:
    try:
        p = Params(path, ops=Ops().bind("/usr", "/usr"), seccomp_disable=True, **kw)
    except OpError as e:
        assert str(e).isprintable(), repr(str(e))
        return
    try:
        p.resolve(0)
    except HakureiError as e:  # SetupError: a type the caller slipped past Params
        assert str(e).isprintable(), repr(str(e))


# -- what the user sees: real runs ---------------------------------------------------

SCRIPT = str(Path(sys.executable).with_name("hakurei"))
BAD = st.one_of(
    st.tuples(st.sampled_from(["--uid", "--gid"]), st.integers(2**32 - 1, 2**80).map(str)),
    st.tuples(st.sampled_from(["--uid", "--gid"]), st.integers(-(2**80), -1).map(str)),
    st.tuples(
        st.just("--adopt-wait"),
        st.one_of(
            st.sampled_from(["inf", "-inf", "nan", "1e300", "-1"]),
            st.floats(86400.5, 1e308).map(repr),
        ),
    ),
    st.tuples(
        st.just("--hostname"),
        st.text(
            st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
            min_size=65,
            max_size=80,
        ),
    ),
    st.tuples(
        st.just("--setenv"),
        st.one_of(st.just(""), ARG_TEXT.map(lambda t: t + "=" + t)),
    ),
)


@settings(max_examples=12, deadline=None)
@given(BAD)
def test_real_runs_with_bad_values_are_one_line_and_125(bad: tuple[str, str]) -> None:
    option, value = bad
    args = [option, value, *(["v"] if option == "--setenv" else [])]
    r = subprocess.run(
        [SCRIPT, "exec", *(os.fsencode(a) for a in args), "--", "/bin/true"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"Traceback" not in r.stderr, r.stderr.decode(errors="replace")
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(b"hakurei: "), r.stderr
    assert lines[0].decode().isprintable()
    assert (r.returncode, r.stdout) == (125, b"")


@pytest.mark.parametrize("option", sorted(VALUE_OPTIONS))
def test_value_option_missing_its_value_is_one_line(option: str) -> None:
    with pytest.raises(HakureiError, match="needs"):
        exec_setup([option])
