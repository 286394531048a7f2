"""The fork server survives any burst of child exits.

Its SIGCHLD handler only writes a byte per signal to a non-blocking wakeup
pipe; draining it must stop at "empty" whatever the count, and say which
signals came (the server relays the group's signals to its inits).  (A loop that read
64 bytes at a time until a short read raised BlockingIOError on exactly 64
pending bytes, and the server died with every container it held.)
"""

from __future__ import annotations

import os

import pytest

from hakurei.init.forkserver import _drain


@pytest.mark.parametrize("pending", [0, 1, 63, 64, 128, 5000])
def test_draining_the_wakeup_pipe_never_raises_and_empties_it(pending: int) -> None:
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if pending:
            os.write(w, b"\x11" * pending)
        assert _drain(r) == b"\x11" * pending
        with pytest.raises(BlockingIOError):
            os.read(r, 1)
    finally:
        os.close(r)
        os.close(w)
