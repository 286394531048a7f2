#!/usr/bin/env python3
"""Write hakurei/seccomp/prebuilt.py: the default settings' programs, compiled here.

Run it with the venv's python on the platform the table is for (CI's: Debian
12, x86_64, libseccomp 2.5.4) after changing a rule, a preset or the
compiler; tests/unit/test_seccomp_prebuilt.py fails until it is rerun.
Every program comes from ``filter_for``'s own compile path, never from the
table it replaces.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hakurei import std
from hakurei.seccomp import cache
from hakurei.seccomp.library import libseccomp_version

#: (presets, flags, retain_session) as callers pass them, and who passes them.
SETTINGS = (
    ((std.EVERYDAY, 0, False), "hakurei exec and the launcher"),
    ((std.EVERYDAY, 0, True), "hakurei exec --retain-session"),
    ((std.EVERYDAY & ~std.DENY_TTY, 0, True), "the launcher with tty: true"),
    ((0, 0, False), "the library's default Params"),
)

HEAD = '''"""Programs libseccomp compiled ahead for the default settings (generated: do not edit).

Written by scripts/seccomp-prebuilt.py on the platform named below, from
``filter_for``'s own compile path; tests/unit/test_seccomp_prebuilt.py
recompiles each one there and fails when any differs.  ``cache.filter_for``
uses an entry only on that machine with that libseccomp, so a start with
the default settings loads neither the rule modules nor the compiler; any
other platform, setting or rule list compiles as before.  Part of the
package like its code: nothing here is read from or written to a user's
directories.
"""

'''


def literal(data: bytes, indent: str) -> str:
    per_line = 22  # 4 characters a byte: within ruff's 100 columns
    chunks = [data[i : i + per_line] for i in range(0, len(data), per_line)]
    return "\n".join(indent + 'b"' + "".join(f"\\x{b:02x}" for b in c) + '"' for c in chunks)


def main() -> int:
    names: dict[bytes, str] = {}
    blobs = []
    rows = []
    for (presets, flags, retain), who in SETTINGS:
        cache.cache_clear()
        bpf, count = cache.compile_for(
            presets=presets, flags=flags, rules=None, retain_session=retain
        )
        if bpf not in names:
            names[bpf] = f"_P{len(names)}"
            blobs.append(f"{names[bpf]} = (\n{literal(bpf, '    ')}\n)\n")
        key = f"0x{presets:X}, 0x{flags:X}, {retain}"
        rows.append(f"    # {who}\n    ({key}): ({names[bpf]}, {count}),\n")
    text = (
        HEAD
        + f'MACHINE = "{os.uname().machine}"\n'
        + f'LIBSECCOMP = "{libseccomp_version()}"\n\n'
        + "\n".join(blobs)
        + "\n#: (presets, flags, retain_session) → (BPF, rule count), as filter_for gives them.\n"
        + "PROGRAMS: dict[tuple[int, int, bool], tuple[bytes, int]] = {\n"
        + "".join(rows)
        + "}\n"
    )
    default = Path(__file__).parent.parent / "hakurei/seccomp/prebuilt.py"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    out.write_text(text)
    print(f"wrote {out}: {len(rows)} settings, {len(names)} programs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
