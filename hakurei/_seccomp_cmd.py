"""``hakurei seccomp``: print the syscall filter a container would get, to audit it.

The options match ``hakurei exec``'s, so the output is exactly what ``exec``
with the same options loads: ``--rules`` replaces the presets and, unless
``--retain-session`` is given, DENY_TTY is added (reference §3.1).
"""

from __future__ import annotations

import argparse
import sys

from . import seccomp
from .errors import HakureiError, describe, q, safe_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

USAGE_STATUS = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line on stderr, not argparse's usage block (``--help`` shows that)."""
        self.exit(USAGE_STATUS, f"hakurei seccomp: {safe_line(message)}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="hakurei seccomp",
        description="Print the syscall filter a container would get.",
    )
    p.add_argument(
        "--presets",
        default=seccomp.format_presets(seccomp.EVERYDAY),
        metavar="LIST",
        help="comma-separated presets: everyday, strict, ext, deny-ns, deny-tty, deny-devel, "
        "linux32, allow-id-calls (default: everyday, as hakurei exec)",
    )
    p.add_argument("--multiarch", action="store_true", help="allow the secondary ABI (x86, arm)")
    p.add_argument("--allow-can", action="store_true", help="allow AF_CAN sockets")
    p.add_argument("--allow-bluetooth", action="store_true", help="allow AF_BLUETOOTH sockets")
    p.add_argument(
        "--allow-io-uring",
        action="store_true",
        help="keep io_uring (refused by default: IORING_OP_SOCKET bypasses the socket rules)",
    )
    p.add_argument(
        "--rules", metavar="FILE.json", help="custom rules (JSON) that replace the presets"
    )
    p.add_argument(
        "--retain-session",
        action="store_true",
        help="as the container option: do not add deny-tty implicitly",
    )
    p.add_argument(
        "--format",
        choices=("pfc", "bpf", "json"),
        default="pfc",
        help="pfc: libseccomp's readable form (default); bpf: the raw program; "
        "json: the rule list, in order, in the --rules format (what is appended to every "
        "filter, the socket allowlist and the io_uring and quotactl_fd rules, is not in it)",
    )
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        presets = seccomp.parse_presets(args.presets)
    except ValueError as e:
        print(f"hakurei seccomp: {e}", file=sys.stderr)
        return USAGE_STATUS
    flags = (
        (seccomp.ALLOW_MULTIARCH if args.multiarch else 0)
        | (seccomp.ALLOW_CAN if args.allow_can else 0)
        | (seccomp.ALLOW_BLUETOOTH if args.allow_bluetooth else 0)
        | (seccomp.ALLOW_IO_URING if args.allow_io_uring else 0)
    )
    try:
        custom = None
        if args.rules is not None:
            from .cli import RULES_MAX, read_regular  # a FIFO or /dev/zero must not hang us

            raw = read_regular(args.rules, RULES_MAX, f"--rules {q(args.rules)}")
            custom = seccomp.rules_from_json(raw.decode())
        _, rules = seccomp.resolve(
            presets=presets, flags=flags, rules=custom, retain_session=args.retain_session
        )
        if args.format == "json":
            sys.stdout.write(seccomp.rules_to_json(rules))
        elif args.format == "pfc":
            sys.stdout.write(seccomp.export_pfc(rules, flags))
        else:
            if sys.stdout.isatty():
                print("hakurei seccomp: refusing to write BPF to a terminal", file=sys.stderr)
                return USAGE_STATUS
            bpf, _ = seccomp.filter_for(
                presets=presets, flags=flags, rules=custom, retain_session=args.retain_session
            )
            assert bpf is not None
            sys.stdout.flush()
            sys.stdout.buffer.write(bpf)
            sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise  # the reader left (| head): hakurei's main exits 141, silently
    except (OSError, HakureiError) as e:
        print(f"hakurei seccomp: {describe(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
