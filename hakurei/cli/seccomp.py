"""``hakurei seccomp``: print the syscall filter a container would get, to audit it.

It takes exactly ``hakurei exec``'s seccomp options (``SECCOMP_OPTIONS`` in
hakurei/cli/_table.py, entries of both tables) and ``--retain-session``, so the output is exactly
what ``exec`` with the same options loads: ``--seccomp-rules`` replaces the
presets and, unless ``--retain-session`` is given, DENY_TTY is added
(reference §3.1).  A bad command line is one line and 125, as for ``exec``.
"""

from __future__ import annotations

import sys

from ..errors import q
from ._table import SECCOMP, SECCOMP_OPTIONS, Args, Opt, Table, UsageError, filter_settings, flag


def _older(canonical: str) -> Opt:
    """``--presets``/``--rules``: this command's spellings before it took exec's."""

    def act(a: Args, name: str, v: list[str]) -> None:
        a.values[canonical] = v[0]

    old = {"--seccomp": "--presets", "--seccomp-rules": "--rules"}[canonical]
    return Opt(old, ("VALUE",), "older spellings", f"as {canonical}", act=act)


def _format(a: Args, name: str, v: list[str]) -> None:
    if v[0] not in ("pfc", "bpf", "json"):
        raise UsageError(f"seccomp: --format: {q(v[0])} is not pfc, bpf or json")
    a.values[name] = v[0]


OUTPUT = "output"
TABLE = Table(
    "seccomp",
    (
        *SECCOMP_OPTIONS,
        Opt(
            "--retain-session",
            (),
            SECCOMP,
            "as the container option: do not add deny-tty implicitly",
            act=flag,
        ),
        Opt(
            "--format",
            ("pfc|bpf|json",),
            OUTPUT,
            "pfc: libseccomp's readable form (default); bpf: the raw program (not to a "
            "terminal); json: the rule list in order, in the --seccomp-rules format, without "
            "what every filter appends (the socket allowlist, io_uring and quotactl_fd)",
            act=_format,
        ),
        _older("--seccomp"),
        _older("--seccomp-rules"),
    ),
)
USAGE = "usage: hakurei seccomp [SECCOMP OPTIONS] [--retain-session] [--format pfc|bpf|json]"
INTRO = "Print the syscall filter `hakurei exec` with the same options would load."


def main(argv: list[str]) -> int:
    a = TABLE.parse(argv, program=False)
    if a.help:
        if sys.stdout is not None:
            groups = (SECCOMP, OUTPUT, "older spellings")
            sys.stdout.write(TABLE.help(USAGE, INTRO, groups))
        return 0
    from .. import seccomp as sc

    disable, presets, flags, custom = filter_settings(a)
    form = a.values.get("--format", "pfc")
    retain = "--retain-session" in a.flags
    if disable:  # what --no-seccomp loads: nothing
        if form == "json":
            sys.stdout.write("[]\n")
        elif form == "pfc":
            sys.stdout.write("# no filter (--no-seccomp)\n")
        return 0
    _, rules = sc.resolve(presets=presets, flags=flags, rules=custom, retain_session=retain)
    if form == "json":
        sys.stdout.write(sc.rules_to_json(rules))
    elif form == "pfc":
        sys.stdout.write(sc.export_pfc(rules, flags))
    else:
        if sys.stdout.isatty():
            raise UsageError("seccomp: refusing to write BPF to a terminal")
        bpf, _ = sc.filter_for(presets=presets, flags=flags, rules=custom, retain_session=retain)
        assert bpf is not None
        sys.stdout.flush()
        sys.stdout.buffer.write(bpf)
        sys.stdout.buffer.flush()
    return 0
