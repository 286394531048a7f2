"""Run one program in a fresh unprivileged container from trio, and wait for it.

The container gets the default profile (the host's /usr and top-level
directories read-only, its own /proc, /dev and /tmp): see
``hakurei.profile.default_ops``.  Its output is captured and printed here:
streams left unset would be /dev/null, as in the Go original.
"""

from __future__ import annotations

import trio

import hakurei
from hakurei import profile


async def main() -> int:
    result = await hakurei.run(
        "/bin/echo",
        ["echo", "hello from a container"],
        ops=profile.default_ops(),
        capture_output=True,
    )
    print(result.stdout.decode() if result.stdout else "", end="")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(trio.run(main))
