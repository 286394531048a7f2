"""When ``hakurei exec`` gives the program a terminal of its own, on which fds, and raw mode."""

from __future__ import annotations

import os
import termios

import pytest

from hakurei import terminal
from hakurei.init import pty


@pytest.mark.parametrize(
    ("flags", "retain", "ttys", "want"),
    [
        (set(), False, (True, True), True),
        (set(), False, (True, False), True),  # `cmd > log` at a terminal: a pty, log byte-exact
        (set(), False, (False, True), False),  # `echo x | cmd`
        (set(), False, (False, False), False),
        ({"--no-pty"}, False, (True, True), False),
        (set(), True, (True, True), False),  # --retain-session shares the caller's terminal
        ({"--pty"}, False, (False, False), True),
    ],
)
def test_a_pty_when_stdin_is_a_terminal_unless_told(
    monkeypatch: pytest.MonkeyPatch,
    flags: set[str],
    retain: bool,
    ttys: tuple[bool, bool],
    want: bool,
) -> None:
    monkeypatch.setattr(os, "isatty", lambda fd: ttys[fd] if fd < 2 else False)
    assert terminal.wanted(flags, retain) is want


@pytest.mark.parametrize(
    ("ttys", "mask", "screen"),
    [
        ((True, True, True), 0b111, 1),
        ((True, False, True), 0b101, 2),  # `cmd > log`: the pty's output to the terminal on 2
        ((True, True, False), 0b011, 1),  # `cmd 2> err`
        ((True, False, False), 0b001, 0),  # `cmd > log 2>&1`: only echo, on stdin's terminal
        ((False, False, False), 0, 1),  # --pty with no terminal at all: as before
    ],
)
def test_the_slave_replaces_only_the_stdio_that_are_terminals(
    monkeypatch: pytest.MonkeyPatch, ttys: tuple[bool, bool, bool], mask: int, screen: int
) -> None:
    monkeypatch.setattr(os, "isatty", lambda fd: ttys[fd] if fd < 3 else False)
    assert terminal.mask() == mask
    assert terminal.screen(mask) == screen


@pytest.mark.parametrize(
    ("mask", "opened", "dups"),
    [
        (0b111, 0, [1, 2]),
        (0b101, 0, [2]),  # stdout a file: init's (the CLI's) fd 1 goes through untouched
        (0b011, 0, [1]),
        (0b001, 0, []),
        (0b010, 0, [1, 2]),  # --pty without a terminal stdin: all three, as before
        (0, 0, [1, 2]),
    ],
)
def test_the_slave_is_opened_onto_stdin_and_duplicated_to_the_terminal_stdio(
    mask: int, opened: int, dups: list[int]
) -> None:
    actions = pty.spawn_actions("/dev/pts/0", mask)
    assert actions[0] == (os.POSIX_SPAWN_OPEN, opened, "/dev/pts/0", os.O_RDWR, 0)
    assert actions[1:] == [(os.POSIX_SPAWN_DUP2, opened, fd) for fd in dups]


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
