"""The mountinfo parser (reference §6.6): fields, octal escapes, every error message."""

from __future__ import annotations

import pytest

from hakurei.errors import MountinfoError
from hakurei.ops._mountinfo import Entry, parse, unmangle

GOOD = b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"


def test_parses_the_manual_page_example() -> None:
    (e,) = parse(GOOD + b"\n")
    assert (e.id, e.parent, e.major, e.minor) == (36, 35, 98, 0)
    assert (e.root, e.target, e.vfs_options) == ("/mnt1", "/mnt2", "rw,noatime")
    assert e.optional == ["master:1"]
    assert (e.fstype, e.source, e.fs_options) == ("ext3", "/dev/root", "rw,errors=continue")


def test_entries_keep_file_order_and_any_number_of_optional_fields() -> None:
    text = (
        "1 0 0:1 / / rw - tmpfs rootfs rw\n"
        "2 1 0:2 / /a rw shared:1 master:2 propagate_from:3 unbindable - proc proc rw\n"
        "3 1 259:1 / /b ro - ext4 /dev/nvme0n1p1 ro"
    )
    entries = parse(text)
    assert [e.target for e in entries] == ["/", "/a", "/b"]
    assert entries[1].optional == ["shared:1", "master:2", "propagate_from:3", "unbindable"]
    assert entries[0].optional == []
    assert (entries[2].major, entries[2].minor) == (259, 1)


def test_str_and_bytes_input_agree_and_empty_input_has_no_entries() -> None:
    assert parse(GOOD) == parse(GOOD.decode())
    assert parse(b"") == []
    assert parse("") == []


def test_empty_source_is_allowed() -> None:
    (e,) = parse(b"1 0 0:1 / / rw - tmpfs  rw")
    assert (e.fstype, e.source, e.fs_options) == ("tmpfs", "", "rw")


def test_octal_escapes_are_unmangled_in_text_fields() -> None:
    line = rb"5 1 0:9 /a\040b /sysroot/with\040space\011tab\012nl\134bs rw - tmpfs my\040src o\054p"
    (e,) = parse(line)
    assert e.root == "/a b"
    assert e.target == "/sysroot/with space\ttab\nnl\\bs"
    assert e.source == "my src"
    assert e.fs_options == "o,p"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (rb"plain", "plain"),
        (rb"\040", " "),
        (rb"a\134", "a\\"),
        (rb"\0", "\\0"),  # too short to be an escape
        (rb"\04", "\\04"),
        (rb"\08x", "\\08x"),  # 8 is not octal
        (rb"\400", "\\400"),  # the kernel never writes a leading digit above 1
        (rb"\\040", "\\ "),
        (b"\xc3\xa9", "\u00e9"),
        (b"\xff", "\udcff"),  # undecodable bytes survive as with os.fsdecode
    ],
)
def test_unmangle(raw: bytes, want: str) -> None:
    assert unmangle(raw) == want


def test_entry_equality_and_repr() -> None:
    (a,) = parse(GOOD)
    (b,) = parse(GOOD)
    assert a == b
    assert a != parse(GOOD.replace(b"/mnt2", b"/mnt3"))[0]
    assert "'/mnt2'" in repr(a)
    assert isinstance(a, Entry)


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        (b"1 0 0:1 / / rw - tmpfs rootfs", "unexpected field count"),
        (b"", "unexpected field count"),
        (b"x 0 0:1 / / rw - tmpfs rootfs rw", 'numeric field "x" invalid syntax'),
        (b"1 0x1 0:1 / / rw - tmpfs rootfs rw", 'numeric field "0x1" invalid syntax'),
        (b" 0 0:1 / / rw - tmpfs rootfs rw", 'numeric field "" invalid syntax'),
        (
            b"99999999999999999999 0 0:1 / / rw - tmpfs rootfs rw",
            'numeric field "99999999999999999999" value out of range',
        ),
        (b"1 0 0-1 / / rw - tmpfs rootfs rw", "bad maj:min field"),
        (b"1 0 a:1 / / rw - tmpfs rootfs rw", "bad maj:min field"),
        (b"1 0 0: / / rw - tmpfs rootfs rw", "bad maj:min field"),
        (b"1 0 0:1  / rw - tmpfs rootfs rw", "unexpected empty field"),
        (b"1 0 0:1 /  rw - tmpfs rootfs rw", "unexpected empty field"),
        (b"1 0 0:1 / /  - tmpfs rootfs rw", "unexpected empty field"),
        (b"1 0 0:1 / / rw -  rootfs rw", "unexpected empty field"),
        (b"1 0 0:1 / / rw shared:1 tmpfs rootfs rw", "bad optional fields separator"),
        (b"1 0 0:1 / / rw - tmpfs rootfs rw extra", "bad optional fields separator"),
    ],
)
def test_errors_name_the_line_and_the_problem(line: bytes, msg: str) -> None:
    text = GOOD + b"\n" + GOOD + b"\n" + line + b"\n" + GOOD + b"\n"
    with pytest.raises(MountinfoError) as info:
        parse(text)
    assert info.value.op == "parse"
    assert info.value.line == 3
    assert info.value.msg == msg
    assert str(info.value) == f"cannot parse mountinfo at line 3: {msg}"


def test_signed_ids_are_accepted_like_go_atoi() -> None:
    (e,) = parse(b"+1 -1 0:1 / / rw - tmpfs rootfs rw")
    assert (e.id, e.parent) == (1, -1)


def test_real_mountinfo_parses() -> None:
    with open("/proc/self/mountinfo", "rb") as f:
        entries = parse(f.read())
    assert any(e.fstype == "proc" for e in entries)
