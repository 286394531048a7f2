"""Syscall filter: presets → rules → BPF, compiled in the parent (reference §8).

Init never imports this package.  The parent resolves the presets to an
ordered rule list, compiles it with libseccomp (through _ctypes) and ships the
BPF bytes in the setup record; init installs them with ``seccomp(2)`` and the
initial process inherits the filter across fork+exec.

The filter is a deny-list with default action allow.  Every rule returns EPERM
or ENOSYS (ENOSYS where userspace must fall back: glibc retries clone3 as clone
only on ENOSYS).  One module per job, each saying why it exists:

* ``rules``: what a rule is (``Rule``, ``ArgCmp``), checked when built;
* ``presets``: the preset and export-flag bits, the rule groups each preset
  adds (Go's tables, in Go's order), their names, and ``resolve``: which rules
  a container gets from its settings;
* ``appended``: what hakurei adds to every filter whatever the presets (the
  socket-family allowlist, io_uring, ``quotactl_fd``);
* ``library``: the libseccomp binding (_ctypes, loaded on first use) and its
  errors;
* ``compile``: compilation to BPF or readable PFC, one context per arch;
* ``json_rules``: the JSON form of a rule list (``--seccomp-rules``,
  ``hakurei seccomp --format json``);
* ``cache``: ``filter_for``, the program a container gets, compiled once per
  process and kept in memory only.

The public names of all of them are re-exported here, loaded lazily (PEP 562):
``from hakurei import seccomp; seccomp.STRICT`` imports the presets and not
the compiler, so the CLI reading its options pays only for what it uses.
"""

# For type checkers only; at run time ``__getattr__`` below loads each name.
# ``X as X``: public names the single module had that ``__all__`` never listed
# (kept out of it, so ``import *`` is unchanged), re-exported for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .appended import appended_rules
    from .appended import socket_comparisons as socket_comparisons
    from .cache import cache_clear, filter_for
    from .compile import compile_bpf, export_pfc, syscall_number
    from .json_rules import rules_from_json, rules_to_json
    from .library import LibraryError, libseccomp_version
    from .presets import (
        ALLOW_BLUETOOTH,
        ALLOW_CAN,
        ALLOW_ID_CALLS,
        ALLOW_IO_URING,
        ALLOW_MULTIARCH,
        DENY_DEVEL,
        DENY_NS,
        DENY_TTY,
        EVERYDAY,
        EXT,
        LINUX32,
        STRICT,
        format_presets,
        parse_presets,
        preset,
        resolve,
    )
    from .presets import CLONE_NEWUSER as CLONE_NEWUSER
    from .presets import PER_LINUX as PER_LINUX
    from .presets import PER_LINUX32 as PER_LINUX32
    from .presets import TIOCLINUX as TIOCLINUX
    from .presets import TIOCSTI as TIOCSTI
    from .rules import EAFNOSUPPORT as EAFNOSUPPORT
    from .rules import ENOSYS as ENOSYS
    from .rules import EPERM as EPERM
    from .rules import (
        EQ,
        GE,
        GT,
        LE,
        LT,
        MASKED_EQ,
        NE,
        ArgCmp,
        Rule,
        RuleError,
        SyscallNameError,
    )

#: Public name → the module that defines it.
_LAZY = {
    **dict.fromkeys(
        (
            "ALLOW_BLUETOOTH",
            "ALLOW_CAN",
            "ALLOW_ID_CALLS",
            "ALLOW_IO_URING",
            "ALLOW_MULTIARCH",
            "CLONE_NEWUSER",
            "DENY_DEVEL",
            "DENY_NS",
            "DENY_TTY",
            "EVERYDAY",
            "EXT",
            "LINUX32",
            "PER_LINUX",
            "PER_LINUX32",
            "STRICT",
            "TIOCLINUX",
            "TIOCSTI",
            "format_presets",
            "parse_presets",
            "preset",
            "resolve",
        ),
        "presets",
    ),
    **dict.fromkeys(
        (
            "EAFNOSUPPORT",
            "ENOSYS",
            "EPERM",
            "EQ",
            "GE",
            "GT",
            "LE",
            "LT",
            "MASKED_EQ",
            "NE",
            "ArgCmp",
            "Rule",
            "RuleError",
            "SyscallNameError",
        ),
        "rules",
    ),
    **dict.fromkeys(("appended_rules", "socket_comparisons"), "appended"),
    **dict.fromkeys(("compile_bpf", "export_pfc", "syscall_number"), "compile"),
    **dict.fromkeys(("LibraryError", "libseccomp_version"), "library"),
    **dict.fromkeys(("rules_from_json", "rules_to_json"), "json_rules"),
    **dict.fromkeys(("cache_clear", "filter_for"), "cache"),
}

__all__ = [
    "ALLOW_BLUETOOTH",
    "ALLOW_CAN",
    "ALLOW_ID_CALLS",
    "ALLOW_IO_URING",
    "ALLOW_MULTIARCH",
    "DENY_DEVEL",
    "DENY_NS",
    "DENY_TTY",
    "EQ",
    "EVERYDAY",
    "EXT",
    "GE",
    "GT",
    "LE",
    "LINUX32",
    "LT",
    "MASKED_EQ",
    "NE",
    "STRICT",
    "ArgCmp",
    "LibraryError",
    "Rule",
    "RuleError",
    "SyscallNameError",
    "appended_rules",
    "cache_clear",
    "compile_bpf",
    "export_pfc",
    "filter_for",
    "format_presets",
    "libseccomp_version",
    "parse_presets",
    "preset",
    "resolve",
    "rules_from_json",
    "rules_to_json",
    "syscall_number",
]


def __getattr__(name: str) -> object:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'hakurei.seccomp' has no attribute {name!r}")
    # Not importlib.import_module: importing importlib costs more than the
    # submodules themselves, and nothing on the CLI's path has loaded it.
    import sys

    full = f"{__name__}.{mod}"
    __import__(full)
    value = getattr(sys.modules[full], name)
    globals()[name] = value
    return value
