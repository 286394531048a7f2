"""When ``hakurei exec`` gives the program a terminal of its own, and what raw mode is."""

from __future__ import annotations

import os
import termios

import pytest

from hakurei import terminal


@pytest.mark.parametrize(
    ("flags", "retain", "ttys", "want"),
    [
        (set(), False, (True, True), True),
        (set(), False, (True, False), False),  # `cmd > log`: a byte-exact file
        (set(), False, (False, True), False),  # `echo x | cmd`
        ({"--no-pty"}, False, (True, True), False),
        (set(), True, (True, True), False),  # --retain-session shares the caller's terminal
        ({"--pty"}, False, (False, False), True),
    ],
)
def test_a_pty_when_stdin_and_stdout_are_terminals_unless_told(
    monkeypatch: pytest.MonkeyPatch,
    flags: set[str],
    retain: bool,
    ttys: tuple[bool, bool],
    want: bool,
) -> None:
    monkeypatch.setattr(os, "isatty", lambda fd: ttys[fd] if fd < 2 else False)
    assert terminal.wanted(flags, retain) is want


def test_raw_mode_makes_every_key_a_byte() -> None:
    cooked = [
        termios.ICRNL | termios.IXON | termios.BRKINT,
        termios.OPOST | termios.ONLCR,
        termios.CS7 | termios.PARENB | termios.CREAD,
        termios.ISIG | termios.ICANON | termios.ECHO | termios.IEXTEN,
        termios.B38400,
        termios.B38400,
        [b"\x00"] * 32,
    ]
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = terminal.raw_mode(cooked)
    assert iflag & (termios.ICRNL | termios.IXON | termios.BRKINT) == 0
    assert oflag & termios.OPOST == 0
    assert (cflag & termios.CSIZE, cflag & termios.PARENB) == (termios.CS8, 0)
    assert cflag & termios.CREAD
    assert lflag & (termios.ISIG | termios.ICANON | termios.ECHO | termios.IEXTEN) == 0
    assert (ispeed, ospeed) == (termios.B38400, termios.B38400)
    assert (cc[termios.VMIN], cc[termios.VTIME]) == (1, 0)
    assert cooked[6] == [b"\x00"] * 32  # the saved settings are not touched
