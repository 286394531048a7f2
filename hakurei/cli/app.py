"""``hakurei app [--identifier-fd FD] [-v] CONFIG|-|FD [ARGS...]``: run one app from its config.

``CONFIG`` is a file, ``-`` (stdin) or an inherited fd number of 3 or more
(hakurei's forms); ``ARGS`` are appended to the config's argv.  The launcher
itself is :mod:`hakurei.app.monitor`: silent on success, the app's exit
status (128+n for a signal), 125 and one line for a bad config, a refused
enablement or a failed setup.  Imported only when run: trio and the app
package never load on ``hakurei exec``'s path.
"""

from __future__ import annotations

import os
import sys

from ..errors import q
from ._table import Opt, Table, UsageError, flag_as, parse_fd, store

OPTIONS = "options"
TABLE = Table(
    "app",
    (
        Opt(
            "--identifier-fd",
            ("FD",),
            OPTIONS,
            "write the instance id and a newline to FD once the app runs, then close it",
            act=store,
        ),
        Opt(("-v", "--verbose"), (), OPTIONS, "print each step on stderr", act=flag_as("-v")),
    ),
)
USAGE = "usage: hakurei app [--identifier-fd FD] [-v] CONFIG|-|FD [ARGS...]"
INTRO = """\
Run the app a config describes (a file, - for stdin, or an inherited fd >= 3),
with the host services it enables, until it exits; then undo every host change.
ARGS are appended to the config's argv.  Silent on success; exit status: the
app's (128+N if killed by signal N); 125 for a bad config or a failed setup."""


def read_config(text: str) -> object:
    """The config named on the command line: a path, ``-``, or an fd number >= 3."""
    from ..app.config import CONFIG_MAX, ConfigError, load_file, loads

    if not text.isdigit():
        return load_file(text)
    fd = int(text)
    if fd < 3:
        raise UsageError(f"app: {q(text)}: an fd number must be 3 or more (or use -)")
    chunks: list[bytes] = []
    got = 0
    try:
        while chunk := os.read(fd, CONFIG_MAX + 1 - got):
            chunks.append(chunk)
            got += len(chunk)
            if got > CONFIG_MAX:
                raise ConfigError(f"fd {fd}", f"larger than {CONFIG_MAX} bytes")
    except OSError as e:
        raise ConfigError(f"fd {fd}", f"cannot read: {e.strerror}") from None
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        return loads(b"".join(chunks))
    except ConfigError as e:
        raise ConfigError(f"fd {fd}: {e.where}", e.reason) from None


def main(argv: list[str]) -> int:
    try:
        a = TABLE.parse(argv)
    except UsageError as e:
        if "no PROGRAM given" in str(e):
            raise UsageError("app: requires at least 1 argument (CONFIG)") from None
        raise
    if a.help:
        if sys.stdout is not None:
            sys.stdout.write(TABLE.help(USAGE, INTRO, (OPTIONS,)))
        return 0
    identifier_fd = None
    if "--identifier-fd" in a.values:
        try:
            identifier_fd = parse_fd("--identifier-fd", a.values["--identifier-fd"])
        except UsageError:
            raise UsageError("cannot write identifier: bad file descriptor") from None
    from ..app.monitor import Launch, SetupFailed, launch
    from ..app.records import Config

    config = read_config(a.program)
    assert isinstance(config, Config)
    if sys.stdout is not None:
        sys.stdout.flush()
    try:
        return launch(Launch(config, a.args, verbose="-v" in a.flags, identifier_fd=identifier_fd))
    except SetupFailed as e:
        return e.status  # init said why on the same stderr: once is enough
