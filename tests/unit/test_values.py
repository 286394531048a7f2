"""Values that are accepted but wrong: refused in the caller, and again by the shim's decoder.

Each bad value is a typed error (``ParamsError`` from the library, a
``UsageError`` or ``ParamsError`` from the CLI's parser, ``SetupError`` from
a record built by other means) whose text is one line naming the value,
quoted with every control byte escaped.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import msgpack
import pytest

from hakurei.cli import UsageError, read_regular
from hakurei.errors import (
    MountError,
    OpError,
    ParamsError,
    PathError,
    ProgramError,
    SetupError,
    describe,
    q,
    safe_line,
    show,
)
from hakurei.ops import Ops, Place
from hakurei.ops.place import MAX_DATA
from hakurei.params import Params
from hakurei.wire import (
    HEADER_LEN,
    ID_LIMIT,
    MAGIC,
    MAX_WAIT,
    VERSION,
    decode,
    encode,
    hostname_bytes,
)

import records

OPS = Ops().bind("/usr", "/usr")
EVIL = "e\x1b]0;pwned\x07"


def params(**kw: Any) -> Params:
    return Params("/bin/true", ops=OPS, seccomp_disable=True, **kw)


# -- the library: ParamsError before anything is spawned --------------------------


@pytest.mark.parametrize("name", ["uid", "gid"])
@pytest.mark.parametrize("value", [-1, ID_LIMIT, 1 << 32, (1 << 32) + 1000, 10**400])
def test_ids_outside_uid_t_are_refused_not_wrapped(name: str, value: int) -> None:
    with pytest.raises(ParamsError, match=rf"^{name} .* is out of range"):
        params(**{name: value})


@pytest.mark.parametrize("name", ["uid", "gid"])
@pytest.mark.parametrize("value", [True, 1.0, "1000", None])
def test_ids_of_another_type_are_refused(name: str, value: object) -> None:
    with pytest.raises(ParamsError, match=rf"^{name} must be an integer"):
        params(**{name: value})


def test_largest_id_is_accepted() -> None:
    s = params(uid=ID_LIMIT - 1, gid=ID_LIMIT - 1).resolve(0)
    assert (s.uid, s.gid) == (ID_LIMIT - 1, ID_LIMIT - 1)


@pytest.mark.parametrize(
    "value", [float("inf"), float("-inf"), float("nan"), 1e300, 10**400, MAX_WAIT + 1, -1e300]
)
def test_adopt_wait_must_be_finite_and_bounded(value: float) -> None:
    with pytest.raises(ParamsError, match=r"^adopt_wait_delay .* is out of range"):
        params(adopt_wait_delay=value)


def test_adopt_wait_bound_and_go_negative_are_accepted() -> None:
    assert params(adopt_wait_delay=MAX_WAIT).resolve(0).adopt_wait_delay == MAX_WAIT
    assert params(adopt_wait_delay=-3).resolve(0).adopt_wait_delay == 0.0  # Go: < 0 is 0


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1, MAX_WAIT + 1, "5"])
def test_container_wait_delay_must_be_finite_and_bounded(value: object) -> None:
    from hakurei.container import Container

    with pytest.raises(ParamsError, match=r"^wait_delay"):
        Container("/bin/true", ops=OPS, wait_delay=value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x" * 65, r"is 65 bytes \(want 1 to 64\)"),
        ("é" * 33, r"is 66 bytes"),
        (b"a\0b", "contains NUL"),
        ("a\0b", "contains NUL"),
        (b"x" * 65, "is 65 bytes"),
        (17, "must be a string"),
    ],
)
def test_hostname_is_1_to_64_bytes_without_nul(value: object, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        params(hostname=value)


def test_hostname_of_any_other_bytes_travels_as_bytes() -> None:
    raw = b"a\xff\x1bb"
    for given in (raw, os.fsdecode(raw)):
        s = params(hostname=given).resolve(0)
        assert os.fsencode(s.hostname) == raw
        assert msgpack.unpackb(encode(s)[HEADER_LEN:])["hostname"] == raw
        assert os.fsencode(decode(encode(s)).hostname) == raw
    assert hostname_bytes("x" * 64) == b"x" * 64


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"": "v"}, 'name "" is empty'),
        ({"A=B": "v"}, r'name "A=B" is empty or has'),
        ({"A\0": "v"}, r'name "A\\x00"'),
        ({"A": "v\0"}, r'variable "A": value contains NUL'),
        ({"A": 1}, "must have a string value"),
        (["A"], "has no '='"),
        (["=v"], 'name "" is empty'),
        (["A=v\0w"], "value contains NUL"),
    ],
)
def test_environment_names_and_values_are_checked(env: object, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        params(env=env)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"args": ["true", "a\0b"]}, r'argument 1 \("a\\x00b"\) must be a string without NUL'),
        ({"args": ["true", 7]}, r"argument 1 \(int\)"),
        ({"dir": "/a\0b"}, "working directory .* contains NUL"),
        ({"dir": "/" + "a" * 4095}, r"working directory is 4096 bytes \(PATH_MAX is 4096\)"),
        ({"args": ["true", "a" * 131072]}, r"argument 1 is 131072 bytes \(at most 131071\)"),
        ({"env": {"A": "x" * 131070}}, r'environment variable "A" is 131072 bytes'),
        ({"parent_perm": 0o10000}, "is not a mode"),
        ({"parent_perm": -1}, "parent_perm must be a non-negative integer"),
        ({"seccomp_flags": -1}, "seccomp_flags must be a non-negative integer"),
    ],
)
def test_other_values_name_what_is_wrong(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        params(**kw)


def test_program_path_with_nul_or_over_path_max_is_refused() -> None:
    with pytest.raises(ParamsError, match=r"program path .* contains NUL"):
        Params("/bin/a\0b", ops=OPS)
    with pytest.raises(ParamsError, match=r"program path is 4096 bytes"):
        Params("/" + "a" * 4095, ops=OPS)
    Params("/" + "a" * 4094, ops=OPS)  # 4095 bytes and the NUL: PATH_MAX exactly


def test_params_errors_are_op_errors_for_existing_callers() -> None:
    with pytest.raises(OpError):
        params(uid=-5)


def test_text_that_is_not_utf8_is_a_setup_error_on_the_wire() -> None:
    """The library's wire carries text as UTF-8; a surrogate is named, not a traceback."""
    s = params(args=["true", os.fsdecode(b"caf\xe9")]).resolve(0)
    with pytest.raises(SetupError, match=r'"\\xe9" in a setup value is not UTF-8'):
        encode(s)


def closed_file() -> object:
    f = open(os.devnull)  # noqa: SIM115 - closed at once: that is the point
    f.close()
    return f


@pytest.mark.parametrize("bad", [-1, 1 << 31, 10**20, True, "x", object(), closed_file()], ids=repr)
@pytest.mark.parametrize("where", ["stdin", "stdout", "extra_files"])
def test_bad_stdio_or_extra_file_is_a_params_error_before_the_spawn(
    where: str, bad: object
) -> None:
    from hakurei.sync import run_sync

    kw: dict[str, Any] = {"extra_files": [bad]} if where == "extra_files" else {where: bad}
    with pytest.raises(ParamsError, match=r"not an open file|out of range|not bool"):
        run_sync("/bin/true", ops=OPS, seccomp_disable=True, **kw)


# -- the shim's decoder: a record built by other means gets the same answer ---------


def frame(**fields: Any) -> bytes:
    """A valid record's frame with ``fields`` replaced, as another encoder might send it."""
    body = msgpack.unpackb(encode(records.make_setup(list(OPS)))[HEADER_LEN:])
    body.update(fields)
    raw = msgpack.packb(body, use_bin_type=True)
    return MAGIC + VERSION.to_bytes(2, "big") + len(raw).to_bytes(4, "big") + raw


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"uid": 1 << 32}, "uid 4294967296 is out of range"),
        ({"gid": ID_LIMIT}, "gid 4294967295 is out of range"),
        ({"host_uid": -1}, "host_uid -1 is out of range"),
        ({"host_gid": 1 << 40}, "host_gid .* is out of range"),
        ({"adopt_wait_delay": float("inf")}, "adopt_wait_delay inf is out of range"),
        ({"adopt_wait_delay": float("nan")}, "adopt_wait_delay nan is out of range"),
        ({"adopt_wait_delay": -1.0}, "adopt_wait_delay -1.0 is out of range"),
        ({"adopt_wait_delay": 1e300}, "adopt_wait_delay 1e[+]300 is out of range"),
        ({"hostname": b"x" * 65}, "hostname .* is 65 bytes"),
        ({"hostname": b"a\0"}, "hostname .* contains NUL"),
        ({"hostname": "box"}, "hostname must be bytes"),
        ({"env": ["=v"]}, 'environment variable name "" is empty'),
        ({"env": ["A=B", "novalue"]}, "has no '='"),
        ({"parent_pid": -1}, "bad parent pid -1"),
        ({"parent_pid": 1 << 40}, "bad parent pid"),
        ({"nrules": -1}, "bad seccomp rule count -1"),
        ({"args": ["true", "a" * 131072]}, "argument 1 is 131072 bytes"),
        ({"dir": "/" + "d" * 4095}, "working directory is 4096 bytes"),
    ],
)
def test_decoder_refuses_the_same_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SetupError, match=message):
        decode(frame(**fields))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"uid": 1 << 32}, "uid 4294967296 is out of range"),
        ({"adopt_wait_delay": float("inf")}, "adopt_wait_delay inf is out of range"),
        ({"hostname": b"\x1b]0;pwned\x07" + b"x" * 60}, r'hostname "\x1b]0;pwned\ax'),
        ({"env": ["=v"]}, 'environment variable name "" is empty'),
    ],
)
def test_shim_entry_refuses_a_record_from_elsewhere_in_one_line(
    fields: dict[str, Any], message: str
) -> None:
    """The real shim (``python -m hakurei init``), fed a record no Params would build."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "hakurei", "init"],
        input=frame(**fields),
        env={"HAKUREI_SETUP": "0"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (r.returncode, r.stdout) == (125, b""), r
    line = r.stderr.decode()
    assert line.startswith("hakurei: cannot decode init setup payload: "), line
    assert line.count("\n") == 1 and line[:-1].isprintable() and message in line, line


def test_decoder_accepts_any_hostname_bytes_the_kernel_takes() -> None:
    assert os.fsencode(decode(frame(hostname=b"\xff\x01")).hostname) == b"\xff\x01"
    assert decode(frame(hostname=b"")).hostname == ""  # empty: keep the inherited name


# -- --place and --seccomp-rules read only a bounded regular file -----------------


def test_read_regular_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r'"[^"]*fifo" is not a regular file'):
        read_regular(str(fifo), 100, "--place")


def test_read_regular_refuses_a_link_to_a_device(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(UsageError, match=r"is not a regular file"):
        read_regular(str(tmp_path / "zero"), 100, "--place")


def test_read_regular_refuses_a_directory_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"is not a regular file"):
        read_regular(str(tmp_path), 100, "--place")
    with pytest.raises(UsageError, match=r"cannot open .*: no such file or directory"):
        read_regular(str(tmp_path / "none"), 100, "--place")


def test_read_regular_enforces_the_limit(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 101)
    with pytest.raises(UsageError, match=r"is larger than 100 bytes"):
        read_regular(str(f), 100, "--place")
    assert read_regular(str(f), 101, "--place") == b"x" * 101


def test_read_regular_cuts_a_file_that_lies_about_its_size() -> None:
    """/proc files say size 0; what is read is still bounded."""
    assert stat.S_ISREG(os.stat("/proc/self/status").st_mode)
    with pytest.raises(UsageError, match=r"is larger than 10 bytes"):
        read_regular("/proc/self/status", 10, "--place")


def test_place_op_refuses_more_than_the_limit() -> None:
    assert MAX_DATA == 16 << 20
    Place("/f", b"x" * MAX_DATA)
    with pytest.raises(OpError, match=rf"{MAX_DATA + 1} bytes exceed the {MAX_DATA}-byte limit"):
        Place("/f", b"x" * (MAX_DATA + 1))
    with pytest.raises(OpError, match=r"exceed"):
        Place.from_wire(
            {"path": "/f", "data": b"x" * (MAX_DATA + 1), "perm": 0o600, "writable": False}
        )


# -- output: every value quoted, every control byte escaped ----------------------


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", '"plain"'),
        (EVIL, r'"e\x1b]0;pwned\a"'),
        ('a"b\\c', r'"a\"b\\c"'),
        ("\r\n\t\v\f\b", r'"\r\n\t\v\f\b"'),
        ("\x00\x7f", r'"\x00\x7f"'),
        ("\x85\x9b", r'"\u0085\u009b"'),  # C1 controls, CSI included
        ("\u202e\u2028", r'"\u202e\u2028"'),  # bidi override, line separator
        (os.fsdecode(b"a\xffb"), r'"a\xffb"'),  # a byte that was not UTF-8
        (b"a\xff\x1b", r'"a\xff\x1b"'),
        ("\ud800", r'"\ud800"'),
        ("\U000e0001", r'"\U000e0001"'),
        ("été ✓", '"été ✓"'),
    ],
)
def test_q_escapes_every_unprintable_character(text: str | bytes, quoted: str) -> None:
    assert q(text) == quoted
    assert q(text).isprintable()


def test_show_leaves_plain_paths_as_the_reference_prints_them() -> None:
    assert show("/usr/lib") == "/usr/lib"
    assert show("/a b") == "/a b"
    assert show("") == '""'
    assert show(f"/tmp/{EVIL}") == r'"/tmp/e\x1b]0;pwned\a"'


def test_safe_line_escapes_what_a_foreign_message_left() -> None:
    assert safe_line(f"x {EVIL}\nnext") == r"x e\x1b]0;pwned\a\nnext"
    assert safe_line("ok: 'x'") == "ok: 'x'"


def test_error_messages_escape_their_paths() -> None:
    evil = f"/tmp/{EVIL}"
    msgs = [
        describe(FileNotFoundError(errno.ENOENT, "x", evil)),
        describe(OSError(errno.EEXIST, "x", evil, f"{evil}2")),
        describe(OSError(errno.EBADF, "x", 7)),
        describe(ValueError(EVIL)),
        str(PathError("open", evil, errno.ENOENT)),
        str(MountError(evil, evil, "", 0x1000, "", errno.EPERM)),
        str(MountError("", evil, "tmpfs", 0, "", errno.EPERM)),
        str(MountError("", evil, "", 0x1020, "", errno.EPERM)),
        str(ProgramError(evil, errno.ENOENT)),
        str(Place(evil, b"")),
        str(OpError(f"x {q(evil)}")),
    ]
    for m in msgs:
        assert "\x1b" not in m and "\x07" not in m and "\n" not in m, m
        assert m.isprintable(), m
    assert describe(OSError(errno.EBADF, "x", 7)) == "7: bad file descriptor"


def test_cli_usage_errors_quote_what_the_user_typed() -> None:
    from hakurei.cli import parse_exec

    with pytest.raises(UsageError) as e:
        parse_exec([f"--{EVIL}", "/bin/true"])
    assert str(e.value).isprintable()
    assert r"\x1b" in str(e.value)
